//! The little dense linear algebra the model-based proposers need, on row-major
//! square matrices stored as `Vec<f64>`: a symmetric eigendecomposition (cyclic
//! Jacobi rotations, for CMA-ES's covariance).
//!
//! Why our own: the matrices are small (tens of rows for CMA-ES, at most a few
//! hundred for the GP), and a linear-algebra crate would be the heaviest
//! dependency of a crate that otherwise has none.

/// Eigenvalues and eigenvectors of the symmetric `n × n` matrix `a` (row-major;
/// only its symmetric part is used). Returns `(values, vectors)` with the
/// eigenvector of `values[k]` in column `k` of `vectors` (row-major).
pub(crate) fn symmetric_eigen(a: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut m: Vec<f64> = (0..n * n)
        .map(|k| {
            let (i, j) = (k / n, k % n);
            0.5 * (a[i * n + j] + a[j * n + i])
        })
        .collect();
    let mut v = vec![0.0; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    let scale: f64 = m.iter().map(|x| x * x).sum::<f64>().sqrt();
    for _sweep in 0..64 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| m[i * n + j] * m[i * n + j])
            .sum::<f64>()
            .sqrt();
        if off <= 1e-15 * scale || off == 0.0 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = m[p * n + q];
                if apq.abs() <= 1e-300 {
                    continue;
                }
                // The rotation that zeroes m[p][q] (Golub and Van Loan, 8.5.2).
                let theta = (m[q * n + q] - m[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (mkp, mkq) = (m[k * n + p], m[k * n + q]);
                    m[k * n + p] = c * mkp - s * mkq;
                    m[k * n + q] = s * mkp + c * mkq;
                }
                for k in 0..n {
                    let (mpk, mqk) = (m[p * n + k], m[q * n + k]);
                    m[p * n + k] = c * mpk - s * mqk;
                    m[q * n + k] = s * mpk + c * mqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| m[i * n + i]).collect(), v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9 * (1.0 + a.abs().max(b.abs()))
    }

    #[test]
    fn eigen_reconstructs_the_matrix() {
        let a = [4.0, 1.0, 0.5, 1.0, 3.0, -0.2, 0.5, -0.2, 1.0];
        let (values, vectors) = symmetric_eigen(&a, 3);
        for i in 0..3 {
            for j in 0..3 {
                let rebuilt: f64 = (0..3)
                    .map(|k| vectors[i * 3 + k] * values[k] * vectors[j * 3 + k])
                    .sum();
                assert!(close(rebuilt, a[i * 3 + j]), "{i},{j}: {rebuilt}");
            }
        }
        // Orthonormal columns.
        for p in 0..3 {
            for q in 0..3 {
                let dot: f64 = (0..3)
                    .map(|k| vectors[k * 3 + p] * vectors[k * 3 + q])
                    .sum();
                assert!(close(dot, if p == q { 1.0 } else { 0.0 }));
            }
        }
        let trace: f64 = values.iter().sum();
        assert!(close(trace, 8.0));
    }
}
