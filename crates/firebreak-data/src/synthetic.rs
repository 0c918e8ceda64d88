//! Unlabelled examples for knowledge distillation, and the translation that
//! augments images and 1-D signals: [`synthetic`] gives examples that look
//! like a dataset's training examples but carry no label ([`IGNORE`]), for a
//! teacher network to label; [`translate`] is the shift the trainer's `shift`
//! augmentation and the synthetic copies share.
//!
//! Why not labelled: a student of a teacher learns from what the teacher says
//! about these examples, and from nothing else; a true label here would teach
//! the student past the teacher (and, for MNIST-1D, give it more labelled data
//! than the dataset holds).

use firebreak_core::{Rng, derive_seed};

use crate::{Dataset, IGNORE, Shape, Split, mnist1d};

/// The standard deviation of the noise added to an augmented copy, as a share
/// of the standard deviation of all the training split's values.
pub const NOISE: f64 = 0.1;

/// `n` unlabelled examples like `data`'s training examples, drawn from `seed`
/// (the same `data`, `n` and `seed` give the same examples). Every label
/// position is [`IGNORE`] (`n × data.targets` of them); `levels` follow the
/// copied examples' where the training split has levels.
///
/// - `mnist1d`: fresh examples from its generator ([`mnist1d::fresh`]) with a
///   seed derived from `seed`, never the bundled data's [`mnist1d::SEED`], so
///   none of them is a training, validation or test example; standardised
///   with the bundled dataset's mean and standard deviation.
/// - other images (`digits`, `mnist`): a random training example translated
///   by up to `max(1, min(height, width) / 8)` positions per axis (see
///   [`translate`]: 1 for 8×8, 3 for 28×28), plus Gaussian noise of [`NOISE`]
///   times the training split's standard deviation.
/// - tabular data: a random training example plus that noise.
/// - token sequences: a random training example, unchanged (token ids must stay
///   exact).
///
/// With no training example to copy (and not `mnist1d`), the split is empty.
pub fn synthetic(data: &Dataset, n: usize, seed: u64) -> Split {
    let size = data.shape.size();
    let targets = data.targets;
    let unlabelled = |x: Vec<f32>, n: usize, levels: Vec<u32>| Split {
        x,
        y: vec![IGNORE; n * targets],
        n,
        levels,
    };
    if data.name == "mnist1d" && size == mnist1d::Config::default().final_seq_length {
        let mut generator_seed = derive_seed(seed, &[MNIST1D_STREAM]);
        if generator_seed == mnist1d::SEED {
            generator_seed += 1;
        }
        return unlabelled(mnist1d::fresh(n, generator_seed).x, n, Vec::new());
    }
    let train = &data.train;
    if train.n == 0 || size == 0 {
        return unlabelled(Vec::new(), 0, Vec::new());
    }
    let mut rng = Rng::new(seed);
    let noise = NOISE * standard_deviation(&train.x);
    let mut x = Vec::with_capacity(n * size);
    let mut levels = Vec::new();
    for _ in 0..n {
        let row = rng.below(train.n as u64) as usize;
        let mut example = train.x[row * size..(row + 1) * size].to_vec();
        if let Some(&level) = train.levels.get(row) {
            levels.push(level);
        }
        match data.shape {
            Shape::Sequence { .. } => {}
            Shape::Image { height, width, .. } => {
                let side = match (height, width) {
                    (1, w) | (w, 1) => w,
                    (h, w) => h.min(w),
                };
                translate(&mut example, &data.shape, (side / 8).max(1), &mut rng);
                add_noise(&mut example, noise, &mut rng);
            }
            Shape::Tabular { .. } => add_noise(&mut example, noise, &mut rng),
        }
        x.extend_from_slice(&example);
    }
    unlabelled(x, n, levels)
}

/// Mixed into the seed of `mnist1d`'s generator, so that the generator's stream
/// is not the copies' stream of the same seed.
const MNIST1D_STREAM: u64 = u64::from_be_bytes(*b"mnist1d\0");

fn standard_deviation(values: &[f32]) -> f64 {
    let count = values.len().max(1) as f64;
    let mean = values.iter().map(|v| f64::from(*v)).sum::<f64>() / count;
    (values
        .iter()
        .map(|v| (f64::from(*v) - mean).powi(2))
        .sum::<f64>()
        / count)
        .sqrt()
}

fn add_noise(example: &mut [f32], scale: f64, rng: &mut Rng) {
    if scale > 0.0 {
        for v in example {
            *v += (scale * mnist1d::normal(rng)) as f32;
        }
    }
}

/// Translates one image (or 1-D signal) in place by a random offset in
/// `-shift..=shift` along each axis longer than one, filling with zeros.
/// Other shapes are left alone.
pub fn translate(example: &mut [f32], shape: &Shape, shift: usize, rng: &mut Rng) {
    let Shape::Image {
        channels,
        height,
        width,
    } = *shape
    else {
        return;
    };
    let mut offset = |len: usize| -> isize {
        if len > 1 {
            rng.below(2 * shift as u64 + 1) as isize - shift as isize
        } else {
            0
        }
    };
    let (dy, dx) = (offset(height), offset(width));
    if (dy, dx) == (0, 0) {
        return;
    }
    let source = example.to_vec();
    let plane = height * width;
    for c in 0..channels {
        for row in 0..height {
            for col in 0..width {
                let (from_row, from_col) = (row as isize - dy, col as isize - dx);
                let inside = (0..height as isize).contains(&from_row)
                    && (0..width as isize).contains(&from_col);
                example[c * plane + row * width + col] = if inside {
                    source[c * plane + from_row as usize * width + from_col as usize]
                } else {
                    0.0
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every translation moves the picture rigidly, fills with zeros, keeps
    /// within `shift`, and over many draws every offset occurs.
    #[test]
    fn translate_moves_images_within_shift() {
        let shape = Shape::Image {
            channels: 2,
            height: 4,
            width: 5,
        };
        let original: Vec<f32> = (1..=40).map(|v| v as f32).collect();
        let mut rng = Rng::new(3);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let mut x = original.clone();
            translate(&mut x, &shape, 1, &mut rng);
            // The offset is where the first channel's top-left value went.
            let offset = (-1..=1)
                .flat_map(|dy| (-1..=1).map(move |dx| (dy, dx)))
                .find(|&(dy, dx)| {
                    (0..2).all(|c| {
                        (0..4).all(|r| {
                            (0..5).all(|col| {
                                let (fr, fc) = (r as i32 - dy, col as i32 - dx);
                                let want = if (0..4).contains(&fr) && (0..5).contains(&fc) {
                                    original[c * 20 + fr as usize * 5 + fc as usize]
                                } else {
                                    0.0
                                };
                                x[c * 20 + r * 5 + col] == want
                            })
                        })
                    })
                })
                .expect("a rigid translation by at most one position");
            seen.insert(offset);
        }
        assert_eq!(seen.len(), 9);
        // 1-D signals move along their length only; other shapes never move.
        let signal = Shape::Image {
            channels: 1,
            height: 1,
            width: 6,
        };
        let line = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
        for _ in 0..20 {
            let mut x = line.to_vec();
            translate(&mut x, &signal, 2, &mut rng);
            let moved = (-2i32..=2).any(|d| {
                (0..6i32).all(|i| {
                    let from = i - d;
                    x[i as usize]
                        == if (0..6).contains(&from) {
                            line[from as usize]
                        } else {
                            0.0
                        }
                })
            });
            assert!(moved, "{x:?} is not the signal shifted by at most 2");
        }
        let mut table = vec![1.0, 2.0, 3.0];
        translate(&mut table, &Shape::Tabular { features: 3 }, 2, &mut rng);
        assert_eq!(table, vec![1.0, 2.0, 3.0]);
    }
}
