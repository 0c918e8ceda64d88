//! MNIST-1D (Greydanus 2020, "Scaling down deep learning"), generated in Rust
//! from its published algorithm: ten hand-designed 12-point templates, each
//! example padded with zeros, dilated, scaled, circularly translated, its
//! background filled with Gaussian-smoothed (correlated) noise, given i.i.d.
//! noise and a random shear, then resampled to 40 points. The whole set is
//! standardised to mean 0 and standard deviation 1. Our random streams are our
//! own, so the examples differ from the reference package's while following the
//! same distribution (`tests/mnist1d.rs` compares statistics).

use firebreak_core::Rng;

use crate::tabular::{shuffle, stratified};
use crate::{Dataset, Shape, Split};

/// The generator's settings; [`Config::default`] is the paper's.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Examples in all (train and test).
    pub num_samples: usize,
    /// Fraction that is training data.
    pub train_split: f64,
    /// Zeros appended to a template: uniform in this inclusive range.
    pub padding: (usize, usize),
    /// Amplitude scaled by 1 + `scale_coeff`·U(−½, ½).
    pub scale_coeff: f64,
    /// Circular shift uniform in 0..`max_translation`.
    pub max_translation: usize,
    /// Standard deviation of the correlated background noise before smoothing.
    pub corr_noise_scale: f64,
    /// Standard deviation of the i.i.d. noise.
    pub iid_noise_scale: f64,
    /// Shear: subtract `shear_scale`·U(−½, ½) times a ramp from −½ to ½.
    pub shear_scale: f64,
    /// Points per final example.
    pub final_seq_length: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            num_samples: 5000,
            train_split: 0.8,
            padding: (36, 60),
            scale_coeff: 0.4,
            max_translation: 48,
            corr_noise_scale: 0.25,
            iid_noise_scale: 2e-2,
            shear_scale: 0.75,
            final_seq_length: 40,
        }
    }
}

/// The seed of the bundled `mnist1d` dataset (the paper's).
pub const SEED: u64 = 42;

const TEMPLATE_LEN: usize = 12;

/// The ten digit templates, each whitened, shifted to start at 0, divided by 6.
pub fn templates() -> [[f64; TEMPLATE_LEN]; 10] {
    let raw: [[f64; TEMPLATE_LEN]; 10] = [
        [5., 6., 6.5, 6.75, 7., 7., 7., 7., 6.75, 6.5, 6., 5.],
        [5., 3., 3., 3.4, 3.8, 4.2, 4.6, 5., 5.4, 5.8, 5., 5.],
        [5., 6., 6.5, 6.5, 6., 5.25, 4.75, 4., 3.5, 3.5, 4., 5.],
        [5., 6., 6.5, 6.5, 6., 5., 5., 6., 6.5, 6.5, 6., 5.],
        [5., 4.4, 3.8, 3.2, 2.6, 2.6, 5., 5., 5., 5., 5., 5.],
        [5., 3., 3., 3., 3., 5., 6., 6.5, 6.5, 6., 4.5, 5.],
        [5., 4., 3.5, 3.25, 3., 3., 3., 3., 3.25, 3.5, 4., 5.],
        [5., 7., 7., 6.6, 6.2, 5.8, 5.4, 5., 4.6, 4.2, 5., 5.],
        [5., 4., 3.5, 3.5, 4., 5., 5., 4., 3.5, 3.5, 4., 5.],
        [5., 4., 3.5, 3.5, 4., 5., 5., 5., 5., 4.7, 4.3, 5.],
    ];
    raw.map(|t| {
        let n = TEMPLATE_LEN as f64;
        let mean = t.iter().sum::<f64>() / n;
        let std = (t.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
        let whitened = t.map(|v| (v - mean) / std);
        whitened.map(|v| (v - whitened[0]) / 6.0)
    })
}

/// Generates `(train, test)` with `seed`: `num_samples / 10` examples per class,
/// shuffled, standardised, split at `train_split`.
pub fn generate(config: &Config, seed: u64) -> (Split, Split) {
    let examples = raw(config, seed);
    let (mean, std) = moments(&examples);
    let at = (examples.len() as f64 * config.train_split) as usize;
    (
        standardised(&examples[..at], mean, std),
        standardised(&examples[at..], mean, std),
    )
}

/// `n` fresh examples from the paper's generator with `seed`, classes in turn
/// (as balanced as `n` allows) and shuffled, standardised with the mean and
/// standard deviation of the bundled dataset (so they look like its examples),
/// with their true labels. A `seed` other than [`SEED`] gives examples the
/// bundled dataset does not hold.
pub fn fresh(n: usize, seed: u64) -> Split {
    let config = Config::default();
    let mut rng = Rng::new(seed);
    let templates = templates();
    let mut examples: Vec<(Vec<f64>, u32)> = (0..n)
        .map(|i| {
            let label = i % templates.len();
            (
                transform(&templates[label], &config, &mut rng),
                label as u32,
            )
        })
        .collect();
    shuffle(&mut examples, &mut rng);
    let (mean, std) = bundled_moments();
    standardised(&examples, mean, std)
}

/// The mean and standard deviation the bundled dataset is standardised with
/// (of all 5,000 raw examples of [`SEED`]), computed once.
fn bundled_moments() -> (f64, f64) {
    static MOMENTS: std::sync::OnceLock<(f64, f64)> = std::sync::OnceLock::new();
    *MOMENTS.get_or_init(|| moments(&raw(&Config::default(), SEED)))
}

/// The raw (unstandardised) examples of `seed`: `num_samples / 10` per class,
/// shuffled.
fn raw(config: &Config, seed: u64) -> Vec<(Vec<f64>, u32)> {
    let mut rng = Rng::new(seed);
    let templates = templates();
    let per_class = config.num_samples / templates.len();
    let mut examples: Vec<(Vec<f64>, u32)> = Vec::with_capacity(per_class * 10);
    for (label, template) in templates.iter().enumerate() {
        for _ in 0..per_class {
            examples.push((transform(template, config, &mut rng), label as u32));
        }
    }
    shuffle(&mut examples, &mut rng);
    examples
}

/// Mean and standard deviation of every value of `examples`.
fn moments(examples: &[(Vec<f64>, u32)]) -> (f64, f64) {
    let values = || examples.iter().flat_map(|(x, _)| x.iter().copied());
    let count = values().count() as f64;
    let mean = values().sum::<f64>() / count;
    let std = (values().map(|v| (v - mean).powi(2)).sum::<f64>() / count).sqrt();
    (mean, std)
}

fn standardised(part: &[(Vec<f64>, u32)], mean: f64, std: f64) -> Split {
    Split {
        x: part
            .iter()
            .flat_map(|(x, _)| x.iter().map(|v| ((v - mean) / std) as f32))
            .collect(),
        y: part.iter().map(|(_, y)| *y).collect(),
        n: part.len(),
        levels: Vec::new(),
    }
}

/// The bundled `mnist1d` dataset: the paper's settings and seed; a stratified
/// 500 of the 4,000 training examples are the validation split (train 3,500,
/// validation 500, test 1,000).
pub fn dataset() -> Dataset {
    let config = Config::default();
    let (train, test) = generate(&config, SEED);
    let [keep, val, _] = stratified(&train.y, [0.875, 0.125], SEED);
    let length = config.final_seq_length;
    let pick = |rows: &[usize]| Split {
        x: rows
            .iter()
            .flat_map(|&r| train.x[r * length..(r + 1) * length].iter().copied())
            .collect(),
        y: rows.iter().map(|&r| train.y[r]).collect(),
        n: rows.len(),
        levels: Vec::new(),
    };
    Dataset {
        name: "mnist1d".into(),
        shape: Shape::Image {
            channels: 1,
            height: 1,
            width: length,
        },
        classes: 10,
        targets: 1,
        train: pick(&keep),
        val: pick(&val),
        test,
    }
}

/// `mnist1d` with its partition drawn from `split_seed`: the same 5,000
/// examples as [`dataset`], split 70/10/20 per class (3,500 / 500 / 1,000).
pub fn dataset_split(split_seed: u64) -> Dataset {
    let config = Config::default();
    let (mut all, test) = generate(&config, SEED);
    all.append(test);
    let [train, val, test] = stratified(&all.y, [0.7, 0.1], split_seed);
    let length = config.final_seq_length;
    Dataset {
        name: "mnist1d".into(),
        shape: Shape::Image {
            channels: 1,
            height: 1,
            width: length,
        },
        classes: 10,
        targets: 1,
        train: all.rows(&train, length),
        val: all.rows(&val, length),
        test: all.rows(&test, length),
    }
}

/// A standard normal draw (Box–Muller).
pub(crate) fn normal(rng: &mut Rng) -> f64 {
    let u = rng.next_f64().max(f64::MIN_POSITIVE);
    let v = rng.next_f64();
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// One example from a template.
fn transform(template: &[f64; TEMPLATE_LEN], c: &Config, rng: &mut Rng) -> Vec<f64> {
    let (low, high) = c.padding;
    let pad = low + (rng.next_f64() * (high - low + 1) as f64) as usize;
    let mut x: Vec<f64> = template.iter().map(|v| v + 1e-8).collect();
    x.resize(TEMPLATE_LEN + pad, 0.0);
    let mut x = interpolate(&x, TEMPLATE_LEN + high);
    let scale = 1.0 + c.scale_coeff * (rng.next_f64() - 0.5);
    x.iter_mut().for_each(|v| *v *= scale);
    let shift = rng.below(c.max_translation as u64) as usize % x.len();
    x.rotate_right(shift);
    let noise: Vec<f64> = (0..x.len())
        .map(|_| c.corr_noise_scale * normal(rng))
        .collect();
    let smooth = gaussian_filter(&noise, 2.0);
    for (v, n) in x.iter_mut().zip(smooth) {
        if *v == 0.0 {
            *v = n;
        }
    }
    for v in &mut x {
        *v += c.iid_noise_scale * normal(rng);
    }
    let shear = c.shear_scale * (rng.next_f64() - 0.5);
    let last = (x.len() - 1) as f64;
    for (i, v) in x.iter_mut().enumerate() {
        *v -= shear * (i as f64 / last - 0.5);
    }
    interpolate(&x, c.final_seq_length)
}

/// Linear resampling of `x` to `n` points spanning the same interval.
fn interpolate(x: &[f64], n: usize) -> Vec<f64> {
    let last = (x.len() - 1) as f64;
    (0..n)
        .map(|i| {
            let t = i as f64 / (n - 1).max(1) as f64 * last;
            let j = (t.floor() as usize).min(x.len() - 2);
            let f = t - j as f64;
            x[j] * (1.0 - f) + x[j + 1] * f
        })
        .collect()
}

/// A Gaussian smoothing with standard deviation `sigma`, truncated at 4σ, edges
/// reflected (the mirror includes the edge value), as SciPy's default.
fn gaussian_filter(x: &[f64], sigma: f64) -> Vec<f64> {
    let radius = (4.0 * sigma + 0.5) as isize;
    let weights: Vec<f64> = (-radius..=radius)
        .map(|k| (-0.5 * (k as f64 / sigma).powi(2)).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    let n = x.len() as isize;
    let at = |i: isize| -> f64 {
        let period = 2 * n;
        let mut j = i.rem_euclid(period);
        if j >= n {
            j = period - 1 - j;
        }
        x[j as usize]
    };
    (0..n)
        .map(|i| {
            weights
                .iter()
                .zip(-radius..=radius)
                .map(|(w, k)| w * at(i + k))
                .sum::<f64>()
                / total
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoothing_keeps_constants_and_reflects_edges() {
        let flat = gaussian_filter(&[2.0; 10], 2.0);
        assert!(flat.iter().all(|v| (v - 2.0).abs() < 1e-12));
        let spike = gaussian_filter(&[1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], 1.0);
        // Reflected at the edge, the spike counts twice near it.
        assert!(spike[0] > spike[1] && spike[1] > spike[2]);
        assert!((spike.iter().sum::<f64>() - 1.0).abs() < 0.01);
    }

    #[test]
    fn interpolation_keeps_the_ends_and_is_linear() {
        assert_eq!(interpolate(&[0.0, 1.0], 5), [0.0, 0.25, 0.5, 0.75, 1.0]);
    }

    #[test]
    fn templates_start_at_zero() {
        assert!(templates().iter().all(|t| t[0] == 0.0));
    }
}
