//! Knowledge distillation (Hinton, Vinyals and Dean 2015, "Distilling the
//! knowledge in a neural network"): a trained teacher network's softened
//! predictions join the hard labels in a student's loss, and label extra,
//! unlabelled examples ([`firebreak_data::synthetic`]) that the student learns
//! from the teacher alone.
//!
//! Principal items: [`Distill`] (what the caller asks for) and, inside the
//! crate, `Teacher` (the loaded teacher and its soft targets) and
//! `Teacher::loss`.
//!
//! The teacher is only ever evaluated: it runs on the plain (non-autodiff)
//! backend in evaluation mode (batch norm's running statistics, no dropout),
//! so no gradient reaches it and its weights never change. It is loaded from
//! the checkpoint folder `train` wrote for it; only its weights are read.

use std::path::PathBuf;

use burn::module::Module;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use firebreak_core::derive_seed;
use firebreak_data::{Dataset, IGNORE, Split};

use crate::TrainError;
use crate::genome::Genome;
use crate::net::Net;
use crate::train::{build, load_weights, read_state};

/// A teacher to distil from, and how (Hinton et al. 2015). A student trained
/// with it minimises, per labelled training example,
/// `(1 − alpha) · CE(label) + alpha · T² · KL(softmax(teacher / T) ‖ softmax(student / T))`,
/// and, per synthetic example (which has no label), `T² · KL(…)` alone, the
/// KL term at full weight because it is all such an example carries. A
/// batch's loss is the mean over its examples, labelled and synthetic alike.
/// The `T²` keeps the soft term's gradients on the scale of the hard term's
/// as `T` changes.
/// The teacher labels each example once, untranslated: with the student's
/// `shift` augmentation, a translated input is held to the teacher's targets
/// for the original, as it is held to its label.
///
/// Classification datasets only (one label per example): for the sequence
/// skills (several labels per example) [`crate::train_distilled`] answers
/// [`TrainError::Unsupported`].
#[derive(Debug, Clone, PartialEq)]
pub struct Distill {
    /// The teacher's genome: any model family that fits the dataset.
    pub teacher: Genome,
    /// The folder `train` wrote the teacher's checkpoint to (`model.bpk`,
    /// `state.json`, ...); only its weights are read.
    pub checkpoint: PathBuf,
    /// The softmax temperature `T` (finite, above 0) of both networks in the
    /// distillation term; 1 is the plain softmax, higher softens.
    pub temperature: f64,
    /// The distillation term's weight on labelled examples, in `[0, 1]`; the
    /// cross-entropy with the labels weighs `1 − alpha`.
    pub alpha: f64,
    /// Unlabelled examples added to each epoch ([`firebreak_data::synthetic`],
    /// drawn from the trial's seed and the epoch, so training stays
    /// deterministic), labelled by the teacher alone. Shuffled in with the
    /// training examples; they lengthen the epoch.
    pub synthetic_per_epoch: usize,
}

/// Mixed into the synthetic examples' seed, so that their stream is not the
/// epoch's shuffling stream.
const SYNTHETIC_STREAM: u64 = u64::from_be_bytes(*b"teacher\0");

/// The teacher's soft targets of a split's examples.
struct Soft {
    /// Row-major `n × classes` probabilities at temperature `T`.
    probs: Vec<f32>,
    /// Per example, `Σ p · ln p` of those probabilities (the KL divergence's
    /// constant part, so that the reported loss is the divergence itself).
    negentropy: Vec<f32>,
}

/// The epoch's synthetic examples and the teacher's soft targets for them.
pub(crate) struct Synthetic {
    split: Split,
    soft: Soft,
}

/// A loaded teacher, in evaluation mode on the plain backend, with the soft
/// targets of the training split (computed once).
pub(crate) struct Teacher {
    net: Net,
    temperature: f64,
    alpha: f64,
    synthetic_per_epoch: usize,
    classes: usize,
    train: Soft,
}

/// One batch's values for [`Teacher::loss`].
pub(crate) struct Batch {
    /// Row-major `rows × size` inputs (to be augmented in place).
    pub x: Vec<f32>,
    y: Vec<i64>,
    /// Weight of each row's cross-entropy with its label.
    hard: Vec<f32>,
    /// Weight of each row's KL divergence from the teacher.
    soft: Vec<f32>,
    probs: Vec<f32>,
    negentropy: Vec<f32>,
}

/// A checkpoint error of the teacher's, saying whose checkpoint it is.
fn teacher_error(error: TrainError) -> TrainError {
    match error {
        TrainError::Checkpoint { path, message } => TrainError::Checkpoint {
            path,
            message: format!(
                "the teacher's checkpoint cannot be read ({message}); hint: name the folder \
                 `train` wrote the teacher's checkpoint to (state.json, model.bpk), with the \
                 teacher's own genome"
            ),
        },
        other => other,
    }
}

impl Synthetic {
    /// Number of synthetic examples.
    pub(crate) fn len(&self) -> usize {
        self.split.n
    }
}

impl Teacher {
    /// Checks `distill`, builds the teacher for `data`, loads its weights and
    /// labels the training split. Call before building the student: building
    /// reseeds burn's process-wide generator, which the student's build then
    /// reseeds with its own seed.
    pub(crate) fn new(
        distill: &Distill,
        data: &Dataset,
        device: &Device,
    ) -> Result<Self, TrainError> {
        if data.targets != 1 {
            return Err(TrainError::Unsupported(format!(
                "distillation needs one label per example, and `{}` has {} (a sequence \
                 skill); hint: distil on a classification dataset, or train without a teacher",
                data.name, data.targets
            )));
        }
        if !(distill.temperature.is_finite() && distill.temperature > 0.0) {
            return Err(TrainError::Distill(format!(
                "the distillation temperature is {}; hint: a finite temperature above 0 \
                 (1 is the plain softmax; 2 to 5 are usual)",
                distill.temperature
            )));
        }
        if !(0.0..=1.0).contains(&distill.alpha) {
            return Err(TrainError::Distill(format!(
                "the distillation weight alpha is {}; hint: a weight in [0, 1] (0: labels \
                 only, 1: the teacher only)",
                distill.alpha
            )));
        }
        let dir = &distill.checkpoint;
        read_state(dir).map_err(teacher_error)?;
        let net = build(&distill.teacher, data, 0, device);
        let net = load_weights(dir, net).map_err(teacher_error)?.valid();
        let mut teacher = Teacher {
            net,
            temperature: distill.temperature,
            alpha: distill.alpha,
            synthetic_per_epoch: distill.synthetic_per_epoch,
            classes: data.classes,
            train: Soft {
                probs: Vec::new(),
                negentropy: Vec::new(),
            },
        };
        teacher.train = teacher.soft(&data.train, data.shape.size())?;
        Ok(teacher)
    }

    /// Synthetic examples per epoch.
    pub(crate) fn synthetic_per_epoch(&self) -> usize {
        self.synthetic_per_epoch
    }

    /// The synthetic examples of `epoch` (0-based) of a training seeded with
    /// `seed`, labelled by the teacher; `None` when there are none.
    pub(crate) fn synthetic(
        &self,
        data: &Dataset,
        seed: u64,
        epoch: u32,
    ) -> Result<Option<Synthetic>, TrainError> {
        if self.synthetic_per_epoch == 0 {
            return Ok(None);
        }
        let split = firebreak_data::synthetic(
            data,
            self.synthetic_per_epoch,
            derive_seed(seed, &[u64::from(epoch), SYNTHETIC_STREAM]),
        );
        let soft = self.soft(&split, data.shape.size())?;
        Ok(Some(Synthetic { split, soft }))
    }

    /// The teacher's probabilities at temperature `T` for every example of
    /// `split`, in chunks of 512.
    fn soft(&self, split: &Split, size: usize) -> Result<Soft, TrainError> {
        let device = Device::flex();
        let classes = self.classes;
        let mut soft = Soft {
            probs: Vec::with_capacity(split.n * classes),
            negentropy: Vec::with_capacity(split.n),
        };
        for start in (0..split.n).step_by(512) {
            let rows = (split.n - start).min(512);
            let x = split.x[start * size..(start + rows) * size].to_vec();
            let x = Tensor::<2>::from_data(TensorData::new(x, [rows, size]), &device);
            let data = self.net.forward(x).into_data().convert::<f32>();
            let dtype = data.dtype();
            let logits = data.try_to_vec::<f32>().map_err(|e| {
                TrainError::Unsupported(format!(
                    "cannot read the teacher's logits as f32 from a {dtype:?} tensor ({e:?}); \
                     hint: this is a bug in the trainer, please report it"
                ))
            })?;
            if logits.len() != rows * classes {
                return Err(TrainError::Unsupported(format!(
                    "the teacher gave {} logits for {rows} examples of {classes} classes; \
                     hint: this is a bug in the trainer, please report it",
                    logits.len()
                )));
            }
            for row in logits.chunks(classes) {
                let scaled: Vec<f64> = row
                    .iter()
                    .map(|z| f64::from(*z) / self.temperature)
                    .collect();
                let max = scaled.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let log_sum = scaled.iter().map(|z| (z - max).exp()).sum::<f64>().ln();
                let mut negentropy = 0.0;
                for z in &scaled {
                    let log_p = z - max - log_sum;
                    let p = log_p.exp();
                    soft.probs.push(p as f32);
                    negentropy += p * log_p;
                }
                soft.negentropy.push(negentropy as f32);
            }
        }
        Ok(soft)
    }

    /// The values of a batch of `rows` of the epoch's pool: indices below
    /// `train.n` are training examples, the rest the synthetic examples in
    /// order.
    pub(crate) fn batch(
        &self,
        train: &Split,
        synthetic: Option<&Synthetic>,
        rows: &[usize],
        size: usize,
    ) -> Batch {
        let classes = self.classes;
        let t2 = (self.temperature * self.temperature) as f32;
        let mut batch = Batch {
            x: Vec::with_capacity(rows.len() * size),
            y: Vec::with_capacity(rows.len()),
            hard: Vec::with_capacity(rows.len()),
            soft: Vec::with_capacity(rows.len()),
            probs: Vec::with_capacity(rows.len() * classes),
            negentropy: Vec::with_capacity(rows.len()),
        };
        for &r in rows {
            let (split, soft, r, labelled) = match synthetic {
                Some(s) if r >= train.n => (&s.split, &s.soft, r - train.n, false),
                _ => (train, &self.train, r, true),
            };
            batch
                .x
                .extend_from_slice(&split.x[r * size..(r + 1) * size]);
            let label = split.y[r];
            let scored = labelled && label != IGNORE;
            batch.y.push(if scored { i64::from(label) } else { 0 });
            batch.hard.push(if scored {
                (1.0 - self.alpha) as f32
            } else {
                0.0
            });
            batch
                .soft
                .push(if labelled { self.alpha as f32 * t2 } else { t2 });
            batch
                .probs
                .extend_from_slice(&soft.probs[r * classes..(r + 1) * classes]);
            batch.negentropy.push(soft.negentropy[r]);
        }
        batch
    }

    /// The batch's loss for the student's `logits` (`[rows, classes]`): the
    /// mean over its rows of the hard-weighted cross-entropy with the labels
    /// and the soft-weighted KL divergence from the teacher at temperature `T`.
    pub(crate) fn loss(&self, logits: Tensor<2>, targets: Targets) -> Tensor<1> {
        let [rows, _] = logits.dims();
        let picked = log_softmax(logits.clone(), 1)
            .gather(1, targets.y.reshape([rows, 1]))
            .reshape([rows]);
        let student = log_softmax(logits.div_scalar(self.temperature), 1);
        let cross = (student * targets.probs).sum_dim(1).reshape([rows]);
        let divergence = targets.negentropy - cross;
        ((-picked) * targets.hard + divergence * targets.soft)
            .sum()
            .div_scalar(rows.max(1) as f64)
    }
}

impl Batch {
    /// The inputs `[rows, size]` and the targets as tensors on `device`.
    pub(crate) fn tensors(self, size: usize, device: &Device) -> (Tensor<2>, Targets) {
        let rows = self.y.len();
        let classes = self.probs.len() / rows.max(1);
        let vector =
            |values: Vec<f32>| Tensor::<1>::from_data(TensorData::new(values, [rows]), device);
        (
            Tensor::from_data(TensorData::new(self.x, [rows, size]), device),
            Targets {
                y: Tensor::from_data(TensorData::new(self.y, [rows]), device),
                hard: vector(self.hard),
                soft: vector(self.soft),
                probs: Tensor::from_data(TensorData::new(self.probs, [rows, classes]), device),
                negentropy: vector(self.negentropy),
            },
        )
    }
}

/// A batch's targets for [`Teacher::loss`], as tensors.
pub(crate) struct Targets {
    y: Tensor<1, Int>,
    hard: Tensor<1>,
    soft: Tensor<1>,
    probs: Tensor<2>,
    negentropy: Tensor<1>,
}
