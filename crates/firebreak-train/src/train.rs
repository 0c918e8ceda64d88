//! The training loop of one trial, on one thread: shuffled mini-batches, the
//! genome's optimiser and schedule, an evaluation on the validation split after
//! every epoch, a checkpoint written before that epoch is reported, and a stop as
//! soon as the caller says so; with a teacher ([`Distill`], `distill.rs`), the
//! teacher's soft targets in the loss and its synthetic examples in each epoch.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, AdamWConfig, GradientsParams, ModuleOptimizer, SgdConfig};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use firebreak_core::{Rng, derive_seed};
use firebreak_data::curriculum::Schedule;
use firebreak_data::{Dataset, IGNORE, Split, translate};

use crate::TrainError;
use crate::distill::{Distill, Teacher};
use crate::genome::{Genome, Optimizer};
use crate::net::Net;

/// What one epoch measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochMetrics {
    /// 1-based epoch.
    pub epoch: u32,
    /// Mean training loss over the epoch's batches.
    pub train_loss: f64,
    /// Loss on the validation split.
    pub val_loss: f64,
    /// Accuracy on the validation split (a sequence counts when every scored
    /// position is right).
    pub val_accuracy: f64,
}

/// The caller's answer to an epoch's report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Train on.
    Continue,
    /// Stop now (a scheduler's decision, an interrupt).
    Stop,
}

/// What a finished (or stopped) training left.
#[derive(Debug, Clone, PartialEq)]
pub struct Trained {
    /// The last epoch's metrics (none if no epoch ran).
    pub last: Option<EpochMetrics>,
    /// Trainable parameters.
    pub params: usize,
    /// Estimated FLOPs per sample of a forward pass.
    pub flops_per_sample: u64,
    /// True when the caller stopped it.
    pub stopped: bool,
}

/// Files of a checkpoint folder.
pub(crate) const MODEL: &str = "model.bpk";
const OPTIMIZER: &str = "optimizer.bpk";
pub(crate) const STATE: &str = "state.json";

/// What a checkpoint folder records besides the weights.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct State {
    epoch: u32,
    last: Option<(f64, f64, f64)>,
}

fn checkpoint_error(path: &Path, message: impl std::fmt::Display) -> TrainError {
    TrainError::Checkpoint {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

/// The network of `genome` for `data`, its weights seeded by `seed`.
pub fn build(genome: &Genome, data: &Dataset, seed: u64, device: &Device) -> Net {
    device.seed(seed);
    Net::new(genome, &data.shape, data.classes, data.targets, device)
}

/// Trains `genome` on `data`. With `checkpoint`, resumes from the folder when it
/// holds a checkpoint and writes one after every epoch. `on_epoch` sees each
/// epoch's metrics (after its checkpoint is written) and may stop the training.
pub fn train(
    genome: &Genome,
    data: &Dataset,
    seed: u64,
    checkpoint: Option<&Path>,
    on_epoch: impl FnMut(&EpochMetrics) -> Control,
) -> Result<Trained, TrainError> {
    train_distilled(genome, data, seed, checkpoint, None, on_epoch)
}

/// [`train`], with a teacher when `distill` names one: the loss mixes the
/// labels with the teacher's softened predictions and each epoch adds the
/// teacher-labelled synthetic examples [`Distill`] describes. The teacher is
/// loaded before anything else (a missing or unreadable checkpoint is a
/// [`TrainError::Checkpoint`] naming its file) and labels the training split
/// once. `train_loss` reports the distillation loss; validation metrics are
/// against the labels, as without a teacher. Without a teacher this is
/// [`train`], result for result.
pub fn train_distilled(
    genome: &Genome,
    data: &Dataset,
    seed: u64,
    checkpoint: Option<&Path>,
    distill: Option<&Distill>,
    mut on_epoch: impl FnMut(&EpochMetrics) -> Control,
) -> Result<Trained, TrainError> {
    crate::alloc::keep_freed_blocks();
    let device = Device::flex().autodiff();
    // The teacher first: building it reseeds burn's process-wide generator,
    // which the student's build then reseeds with the trial's seed.
    let teacher = distill
        .map(|d| Teacher::new(d, data, &device))
        .transpose()?;
    let mut net = build(genome, data, seed, &device);
    let mut optimizer = optimizer(genome);
    let mut start = 0;
    let mut last = None;
    if let Some(dir) = checkpoint.filter(|d| d.join(STATE).exists()) {
        let (model, optim, state) = load(dir, net, optimizer)?;
        net = model;
        optimizer = optim;
        start = state.epoch;
        last = state
            .last
            .map(|(train_loss, val_loss, val_accuracy)| EpochMetrics {
                epoch: state.epoch,
                train_loss,
                val_loss,
                val_accuracy,
            });
    }
    let params = net.trainable_params();
    let flops_per_sample = net.flops_per_sample();
    let mut stopped = false;
    let train = &data.train;
    let size = data.shape.size();
    let synthetic_per_epoch = teacher.as_ref().map_or(0, Teacher::synthetic_per_epoch);
    let batch = genome.batch_size.min(train.n + synthetic_per_epoch).max(1);
    let curriculum = Curriculum::new(genome, train)?;
    let mut level_losses: Vec<f64> = Vec::new();
    for epoch in start..genome.epochs {
        let mut rng = Rng::new(derive_seed(seed, &[u64::from(epoch)]));
        let progress = f64::from(epoch) / f64::from(genome.epochs);
        let mut order: Vec<usize> = curriculum.rows(train, progress, &level_losses);
        let synthetic = match &teacher {
            Some(teacher) => teacher.synthetic(data, seed, epoch)?,
            None => None,
        };
        if let Some(synthetic) = &synthetic {
            order.extend(train.n..train.n + synthetic.len());
        }
        let steps = order.len().div_ceil(batch).max(1);
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let mut loss_sum = 0.0;
        for (step, rows) in order.chunks(batch).enumerate() {
            let augment = |x: &mut [f32], rng: &mut Rng| {
                if genome.shift > 0 {
                    for example in x.chunks_mut(size) {
                        translate(example, &data.shape, genome.shift, rng);
                    }
                }
            };
            let loss = match &teacher {
                None => {
                    let (mut x, y, mask) = batch_values(train, rows, size, data.targets);
                    augment(&mut x, &mut rng);
                    let (x, y, mask) = tensors(x, y, mask, rows.len(), size, &device);
                    masked_cross_entropy(net.forward(x), y, mask)
                }
                Some(teacher) => {
                    let mut values = teacher.batch(train, synthetic.as_ref(), rows, size);
                    augment(&mut values.x, &mut rng);
                    let (x, targets) = values.tensors(size, &device);
                    teacher.loss(net.forward(x), targets)
                }
            };
            loss_sum += f64::from(loss.clone().into_scalar::<f32>());
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            let t = f64::from(epoch) + step as f64 / steps as f64;
            let lr = genome.schedule.rate(genome.lr, t, genome.epochs);
            net = optimizer.step(lr, net, grads);
        }
        let train_loss = loss_sum / steps as f64;
        if !train_loss.is_finite() {
            return Err(TrainError::Diverged {
                epoch: epoch + 1,
                loss: train_loss,
            });
        }
        if curriculum.self_paced() {
            level_losses = curriculum.losses(&net, train, size, data.targets)?;
        }
        let (val_loss, val_accuracy) = evaluate(&net, &data.val, size, data.targets)?;
        let metrics = EpochMetrics {
            epoch: epoch + 1,
            train_loss,
            val_loss,
            val_accuracy,
        };
        if let Some(dir) = checkpoint {
            save(dir, &net, &optimizer, &metrics)?;
        }
        last = Some(metrics);
        if on_epoch(&metrics) == Control::Stop {
            stopped = true;
            break;
        }
    }
    Ok(Trained {
        last,
        params,
        flops_per_sample,
        stopped,
    })
}

/// Which training examples an epoch uses: all of them, or, for a curriculum
/// skill with a `curriculum` schedule, the levels the schedule has opened.
struct Curriculum {
    schedule: Option<Schedule>,
    levels: u32,
}

impl Curriculum {
    fn new(genome: &Genome, train: &Split) -> Result<Self, TrainError> {
        let levels = train.levels.iter().copied().max().unwrap_or(0);
        let schedule = match (&genome.curriculum, levels) {
            (None, _) => None,
            (Some(name), 0) => {
                return Err(TrainError::Unsupported(format!(
                    "curriculum = {name} needs a curriculum skill dataset (mod_add, parity, copy, reverse, sort, addition)"
                )));
            }
            (Some(name), _) => Some(Schedule::from_name(name).ok_or_else(|| {
                TrainError::Genome(format!("unknown curriculum schedule `{name}`"))
            })?),
        };
        Ok(Curriculum { schedule, levels })
    }

    fn self_paced(&self) -> bool {
        self.schedule == Some(Schedule::SelfPaced)
    }

    /// The training rows of an epoch at `progress`.
    fn rows(&self, train: &Split, progress: f64, losses: &[f64]) -> Vec<usize> {
        match self.schedule {
            None => (0..train.n).collect(),
            Some(schedule) => {
                let open = schedule.levels(self.levels, progress, losses);
                (0..train.n).filter(|&r| train.levels[r] <= open).collect()
            }
        }
    }

    /// The training loss of each level, easiest first (on up to 256 examples each).
    fn losses(
        &self,
        net: &Net,
        train: &Split,
        size: usize,
        targets: usize,
    ) -> Result<Vec<f64>, TrainError> {
        (1..=self.levels)
            .map(|level| {
                let rows: Vec<usize> = (0..train.n)
                    .filter(|&r| train.levels[r] == level)
                    .take(256)
                    .collect();
                let subset = train.rows(&rows, size);
                Ok(evaluate(net, &subset, size, targets)?.0)
            })
            .collect()
    }
}

/// Loss and accuracy on the test split of the network checkpointed in `dir`.
pub fn test(genome: &Genome, data: &Dataset, dir: &Path) -> Result<(f64, f64), TrainError> {
    let device = Device::flex().autodiff();
    let net = build(genome, data, 0, &device);
    let (net, _, _) = load(dir, net, optimizer(genome))?;
    evaluate(&net, &data.test, data.shape.size(), data.targets)
}

fn optimizer(genome: &Genome) -> ModuleOptimizer {
    let decay =
        (genome.weight_decay > 0.0).then(|| WeightDecayConfig::new(genome.weight_decay as f32));
    match genome.optimizer {
        Optimizer::Sgd { momentum } => SgdConfig::new()
            .with_momentum((momentum > 0.0).then(|| {
                MomentumConfig::new()
                    .with_momentum(momentum)
                    .with_dampening(0.0)
            }))
            .with_weight_decay(decay)
            .init(),
        Optimizer::Adam => AdamConfig::new().with_weight_decay(decay).init(),
        Optimizer::AdamW => AdamWConfig::new()
            .with_weight_decay(genome.weight_decay as f32)
            .init(),
    }
}

fn save(
    dir: &Path,
    net: &Net,
    optimizer: &ModuleOptimizer,
    metrics: &EpochMetrics,
) -> Result<(), TrainError> {
    std::fs::create_dir_all(dir).map_err(|e| checkpoint_error(dir, e))?;
    // Written beside, then renamed: a kill mid-write leaves the previous checkpoint.
    let tmp = |name: &str| -> PathBuf { dir.join(format!(".{name}.tmp")) };
    net.clone()
        .save_file(tmp(MODEL))
        .map_err(|e| checkpoint_error(&tmp(MODEL), e))?;
    optimizer
        .save(tmp(OPTIMIZER))
        .map_err(|e| checkpoint_error(&tmp(OPTIMIZER), e))?;
    let state = State {
        epoch: metrics.epoch,
        last: Some((metrics.train_loss, metrics.val_loss, metrics.val_accuracy)),
    };
    std::fs::write(tmp(STATE), serde_json::to_vec(&state).unwrap_or_default())
        .map_err(|e| checkpoint_error(&tmp(STATE), e))?;
    // The state file goes last: it is what says a checkpoint exists.
    for name in [MODEL, OPTIMIZER, STATE] {
        std::fs::rename(tmp(name), dir.join(name))
            .map_err(|e| checkpoint_error(&dir.join(name), e))?;
    }
    Ok(())
}

fn load(
    dir: &Path,
    net: Net,
    optimizer: ModuleOptimizer,
) -> Result<(Net, ModuleOptimizer, State), TrainError> {
    let state = read_state(dir)?;
    let net = load_weights(dir, net)?;
    let bytes = std::fs::read(dir.join(OPTIMIZER))
        .map_err(|e| checkpoint_error(&dir.join(OPTIMIZER), e))?;
    let optimizer = optimizer
        .from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes))
        .map_err(|e| checkpoint_error(&dir.join(OPTIMIZER), e))?;
    Ok((net, optimizer, state))
}

/// The state file of the checkpoint in `dir` (what says a checkpoint exists).
pub(crate) fn read_state(dir: &Path) -> Result<State, TrainError> {
    let state_path = dir.join(STATE);
    let text = std::fs::read(&state_path).map_err(|e| checkpoint_error(&state_path, e))?;
    serde_json::from_slice(&text).map_err(|e| checkpoint_error(&state_path, e))
}

/// `net` with the weights of the checkpoint in `dir`.
pub(crate) fn load_weights(dir: &Path, net: Net) -> Result<Net, TrainError> {
    net.try_load_file(dir.join(MODEL))
        .map_err(|e| checkpoint_error(&dir.join(MODEL), e))
}

/// Inputs `[rows, size]`, labels `[rows · targets]` (ignored positions as 0)
/// and the mask of scored positions.
fn batch_tensors(
    split: &Split,
    rows: &[usize],
    size: usize,
    targets: usize,
    device: &Device,
) -> (Tensor<2>, Tensor<1, Int>, Tensor<1>) {
    let (x, y, mask) = batch_values(split, rows, size, targets);
    tensors(x, y, mask, rows.len(), size, device)
}

/// The inputs, labels and scoring mask of `rows`, as plain values.
fn batch_values(
    split: &Split,
    rows: &[usize],
    size: usize,
    targets: usize,
) -> (Vec<f32>, Vec<i64>, Vec<f32>) {
    let mut x = Vec::with_capacity(rows.len() * size);
    let mut y = Vec::with_capacity(rows.len() * targets);
    let mut mask = Vec::with_capacity(rows.len() * targets);
    for &r in rows {
        x.extend_from_slice(&split.x[r * size..(r + 1) * size]);
        for &label in &split.y[r * targets..(r + 1) * targets] {
            let scored = label != IGNORE;
            y.push(if scored { i64::from(label) } else { 0 });
            mask.push(if scored { 1.0f32 } else { 0.0 });
        }
    }
    (x, y, mask)
}

/// The tensors of a batch of `n` examples of `size` values.
fn tensors(
    x: Vec<f32>,
    y: Vec<i64>,
    mask: Vec<f32>,
    n: usize,
    size: usize,
    device: &Device,
) -> (Tensor<2>, Tensor<1, Int>, Tensor<1>) {
    let labels = y.len();
    (
        Tensor::from_data(TensorData::new(x, [n, size]), device),
        Tensor::from_data(TensorData::new(y, [labels]), device),
        Tensor::from_data(TensorData::new(mask, [labels]), device),
    )
}

/// Mean cross-entropy over the scored positions.
fn masked_cross_entropy(logits: Tensor<2>, y: Tensor<1, Int>, mask: Tensor<1>) -> Tensor<1> {
    let [rows, _] = logits.dims();
    let picked = log_softmax(logits, 1)
        .gather(1, y.reshape([rows, 1]))
        .reshape([rows]);
    let count = mask.clone().sum().clamp_min(1.0);
    -(picked * mask).sum() / count
}

/// Loss and accuracy of `net` (in evaluation mode) on `split`; an error when the
/// predictions cannot be read (never an accuracy of 0).
fn evaluate(
    net: &Net,
    split: &Split,
    size: usize,
    targets: usize,
) -> Result<(f64, f64), TrainError> {
    let net = net.valid();
    let device = Device::flex();
    let mut loss_sum = 0.0;
    let mut scored = 0.0;
    let mut correct = 0usize;
    let rows: Vec<usize> = (0..split.n).collect();
    for chunk in rows.chunks(512) {
        let (x, y, mask) = batch_tensors(split, chunk, size, targets, &device);
        let logits = net.forward(x);
        let predicted = predictions(
            logits.clone().argmax(1).into_data().convert::<i64>(),
            chunk.len() * targets,
        )?;
        let labels = &split.y;
        let n_scored = chunk
            .iter()
            .flat_map(|&r| &labels[r * targets..(r + 1) * targets])
            .filter(|&&l| l != IGNORE)
            .count() as f64;
        let loss = f64::from(masked_cross_entropy(logits, y, mask).into_scalar::<f32>());
        loss_sum += loss * n_scored;
        scored += n_scored;
        for (i, &r) in chunk.iter().enumerate() {
            let right = (0..targets).all(|t| {
                let label = labels[r * targets + t];
                label == IGNORE || predicted.get(i * targets + t) == Some(&i64::from(label))
            });
            correct += usize::from(right);
        }
    }
    Ok((
        loss_sum / scored.max(1.0),
        correct as f64 / split.n.max(1) as f64,
    ))
}

/// The predicted classes in `data` (argmax indices, as `i64`), which must be
/// `expected` many: one per example and target.
fn predictions(data: TensorData, expected: usize) -> Result<Vec<i64>, TrainError> {
    let dtype = data.dtype();
    let predicted = data.try_to_vec::<i64>().map_err(|e| {
        TrainError::Unsupported(format!(
            "cannot read the predicted classes as i64 from a {dtype:?} tensor ({e:?}), \
             so the accuracy is unknown; hint: this is a bug in the trainer, please report it"
        ))
    })?;
    if predicted.len() != expected {
        return Err(TrainError::Unsupported(format!(
            "the network predicted {} classes for {expected} labels, so the accuracy is \
             unknown; hint: this is a bug in the trainer, please report it",
            predicted.len()
        )));
    }
    Ok(predicted)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Predictions that cannot be read, or too few of them, are an error, not an
    /// accuracy of 0.
    #[test]
    fn unreadable_predictions_are_an_error() {
        assert_eq!(
            predictions(TensorData::new(vec![2i64, 0, 1], [3]), 3).expect("readable"),
            [2, 0, 1]
        );
        let floats = predictions(TensorData::new(vec![2.0f32, 0.0], [2]), 2)
            .expect_err("f32 is not i64")
            .to_string();
        assert!(
            floats.starts_with("cannot read the predicted classes as i64 from a F32 tensor"),
            "{floats}"
        );
        let short = predictions(TensorData::new(Vec::<i64>::new(), [0]), 4)
            .expect_err("none for four labels")
            .to_string();
        assert!(
            short.starts_with("the network predicted 0 classes for 4 labels"),
            "{short}"
        );
        assert!(floats.contains("; hint: ") && short.contains("; hint: "));
    }
}
