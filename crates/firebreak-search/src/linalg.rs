//! The little dense linear algebra the model-based proposers need, on row-major
//! square matrices stored as `Vec<f64>`: a symmetric eigendecomposition (cyclic
//! Jacobi rotations, for CMA-ES's covariance) and the Cholesky factorisation with
//! its triangular solves (for the Gaussian process).
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

/// `Σ a_i b_i` with four running sums (a fixed order, so results are
/// reproducible, and about four times faster than one sum).
pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (mut s0, mut s1, mut s2, mut s3) = (0.0, 0.0, 0.0, 0.0);
    let chunks = n / 4;
    for c in 0..chunks {
        let i = 4 * c;
        s0 += a[i] * b[i];
        s1 += a[i + 1] * b[i + 1];
        s2 += a[i + 2] * b[i + 2];
        s3 += a[i + 3] * b[i + 3];
    }
    let mut sum = (s0 + s1) + (s2 + s3);
    for i in 4 * chunks..n {
        sum += a[i] * b[i];
    }
    sum
}

/// The lower-triangular Cholesky factor `L` of the symmetric positive definite
/// `n × n` matrix `a` (`a = L Lᵀ`), or `None` when `a` is not positive definite
/// to working precision.
pub(crate) fn cholesky(a: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let sum = a[i * n + j] - dot(&l[i * n..i * n + j], &l[j * n..j * n + j]);
            if i == j {
                if sum <= 0.0 || !sum.is_finite() {
                    return None;
                }
                l[i * n + i] = sum.sqrt();
            } else {
                l[i * n + j] = sum / l[j * n + j];
            }
        }
    }
    Some(l)
}

/// Solves `L x = b` for lower-triangular `L`.
pub(crate) fn solve_lower(l: &[f64], n: usize, b: &[f64]) -> Vec<f64> {
    let mut x = b.to_vec();
    for i in 0..n {
        let sum = x[i] - dot(&l[i * n..i * n + i], &x[..i]);
        x[i] = sum / l[i * n + i];
    }
    x
}

/// Solves `Lᵀ x = b` for lower-triangular `L`.
pub(crate) fn solve_lower_transposed(l: &[f64], n: usize, b: &[f64]) -> Vec<f64> {
    // Column-oriented: once x[i] is known, remove its share from the rows above,
    // walking row i of L (contiguous) instead of column i.
    let mut x = b.to_vec();
    for i in (0..n).rev() {
        x[i] /= l[i * n + i];
        let xi = x[i];
        for (xk, lik) in x[..i].iter_mut().zip(&l[i * n..i * n + i]) {
            *xk -= lik * xi;
        }
    }
    x
}

/// `(L Lᵀ)⁻¹` from the Cholesky factor `L`.
pub(crate) fn cholesky_inverse(l: &[f64], n: usize) -> Vec<f64> {
    // L⁻¹ row by row (row i = −(Σ_k L[i][k] · row k of L⁻¹) / L[i][i]), then
    // A⁻¹ = L⁻ᵀ L⁻¹ = Σ_k (row k of L⁻¹)ᵀ (row k of L⁻¹), all on contiguous rows.
    let mut inv = vec![0.0; n * n];
    let mut acc = vec![0.0; n];
    for i in 0..n {
        acc[..i].iter_mut().for_each(|v| *v = 0.0);
        for k in 0..i {
            let a = l[i * n + k];
            let (row_k, row_acc) = (&inv[k * n..k * n + k + 1], &mut acc[..=k]);
            for (v, r) in row_acc.iter_mut().zip(row_k) {
                *v += a * r;
            }
        }
        let d = l[i * n + i];
        for j in 0..i {
            inv[i * n + j] = -acc[j] / d;
        }
        inv[i * n + i] = 1.0 / d;
    }
    let mut out = vec![0.0; n * n];
    for k in 0..n {
        let row = &inv[k * n..k * n + k + 1];
        for (i, ri) in row.iter().enumerate() {
            let out_row = &mut out[i * n..i * n + i + 1];
            for (o, rj) in out_row.iter_mut().zip(&row[..=i]) {
                *o += ri * rj;
            }
        }
    }
    for i in 0..n {
        for j in 0..i {
            out[j * n + i] = out[i * n + j];
        }
    }
    out
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

    #[test]
    fn cholesky_solves_and_inverts() {
        let a = [4.0, 2.0, 0.4, 2.0, 3.0, 0.1, 0.4, 0.1, 2.0];
        let l = cholesky(&a, 3).expect("positive definite");
        let b = [1.0, -2.0, 0.5];
        let x = solve_lower_transposed(&l, 3, &solve_lower(&l, 3, &b));
        for i in 0..3 {
            let ax: f64 = (0..3).map(|j| a[i * 3 + j] * x[j]).sum();
            assert!(close(ax, b[i]));
        }
        let inv = cholesky_inverse(&l, 3);
        for i in 0..3 {
            for j in 0..3 {
                let p: f64 = (0..3).map(|k| a[i * 3 + k] * inv[k * 3 + j]).sum();
                assert!(close(p, if i == j { 1.0 } else { 0.0 }));
            }
        }
        assert!(cholesky(&[1.0, 2.0, 2.0, 1.0], 2).is_none());
    }
}
