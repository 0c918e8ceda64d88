//! Genomes: a point of the search space read as a network architecture and its
//! training hyperparameters. Every parameter a genome understands has a default,
//! so a space names only what it searches; a parameter no genome understands is
//! an error, so a typo cannot silently search nothing.

use firebreak_core::{ParamValue, Params};
use firebreak_data::Shape;

use crate::TrainError;

/// The model families (`[task] model`).
pub const MODELS: &[&str] = &["mlp", "cnn", "cell", "transformer"];

/// Parameters every model understands (training hyperparameters).
const COMMON: &[&str] = &[
    "optimizer",
    "lr",
    "momentum",
    "weight_decay",
    "schedule",
    "warmup_epochs",
    "batch_size",
    "epochs",
    "dropout",
    "curriculum",
    "shift",
];

/// Parameters of the hidden layers that only the MLP and the CNN build from: the
/// cell's edges are fixed ReLU–convolution–batch-norm operations and the
/// transformer's layers have their own GELU and layer norm, so for those a
/// searched `activation` or `norm` would change nothing.
const LAYERED: &[&str] = &["activation", "norm"];

/// A hidden-unit nonlinearity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// max(0, x).
    Relu,
    /// Gaussian error linear unit.
    Gelu,
    /// Hyperbolic tangent.
    Tanh,
    /// x · sigmoid(x).
    Silu,
}

/// A normalisation layer after each hidden layer or convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Norm {
    /// None.
    None,
    /// Batch normalisation.
    Batch,
    /// Layer normalisation.
    Layer,
}

/// Pooling after a convolution block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pool {
    /// None.
    None,
    /// 2×2 max pooling (1×2 on 1-D data).
    Max,
    /// 2×2 average pooling (1×2 on 1-D data).
    Avg,
}

/// An edge of a NAS-Bench-201-style cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellOp {
    /// No connection (zero).
    None,
    /// Identity.
    Skip,
    /// ReLU, 1×1 convolution, batch norm.
    Conv1x1,
    /// ReLU, 3×3 convolution, batch norm.
    Conv3x3,
    /// 3×3 average pooling, stride 1.
    AvgPool,
}

/// The network of a genome.
#[derive(Debug, Clone, PartialEq)]
pub enum Architecture {
    /// Fully connected layers.
    Mlp {
        /// Width of each hidden layer.
        widths: Vec<usize>,
        /// Identity shortcuts around hidden layers whose input and output widths match.
        residual: bool,
    },
    /// Convolution blocks (conv, norm, activation, pool), then a dense head.
    Cnn {
        /// Per block: output channels and kernel size.
        blocks: Vec<(usize, usize)>,
        /// Pooling after each block (while the map is at least 2 wide).
        pool: Pool,
        /// Units of a hidden dense layer before the output (0: none).
        hidden: usize,
    },
    /// A stem convolution, stacked cells sharing one DAG, global average pooling.
    Cell {
        /// The six edges in NAS-Bench-201 order: 0→1, 0→2, 1→2, 0→3, 1→3, 2→3.
        ops: [CellOp; 6],
        /// Number of cells.
        cells: usize,
        /// Channels throughout.
        channels: usize,
    },
    /// Token and position embeddings, encoder layers, a per-position classifier.
    Transformer {
        /// Encoder layers.
        layers: usize,
        /// Attention heads (must divide `width`).
        heads: usize,
        /// Model width.
        width: usize,
        /// Feed-forward width.
        ff_width: usize,
    },
}

/// An optimiser.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Optimizer {
    /// SGD with (heavy-ball) momentum.
    Sgd {
        /// Momentum coefficient.
        momentum: f64,
    },
    /// Adam, weight decay as L2 in the gradient.
    Adam,
    /// AdamW, decoupled weight decay.
    AdamW,
}

/// A learning-rate schedule over epochs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Schedule {
    /// The same rate throughout.
    Constant,
    /// Cosine decay from the rate to zero over the trial's epochs.
    Cosine,
    /// Linear warm-up over `warmup_epochs`, then cosine decay.
    WarmupCosine {
        /// Epochs of warm-up.
        warmup_epochs: u32,
    },
}

impl Schedule {
    /// The rate at fractional epoch `t` of `epochs`, for a base rate `lr`.
    pub fn rate(&self, lr: f64, t: f64, epochs: u32) -> f64 {
        let cosine = |from: f64, span: f64| {
            let x = ((t - from) / span.max(1e-9)).clamp(0.0, 1.0);
            0.5 * lr * (1.0 + (std::f64::consts::PI * x).cos())
        };
        match *self {
            Schedule::Constant => lr,
            Schedule::Cosine => cosine(0.0, f64::from(epochs)),
            Schedule::WarmupCosine { warmup_epochs } => {
                let warm = f64::from(warmup_epochs.min(epochs));
                if t < warm {
                    lr * (t + 1.0 / 16.0).min(warm) / warm
                } else {
                    cosine(warm, f64::from(epochs) - warm)
                }
            }
        }
    }
}

/// A whole genome: the network and how to train it.
#[derive(Debug, Clone, PartialEq)]
pub struct Genome {
    /// The network.
    pub architecture: Architecture,
    /// Hidden nonlinearity.
    pub activation: Activation,
    /// Normalisation.
    pub norm: Norm,
    /// Dropout probability before each dense layer.
    pub dropout: f64,
    /// The optimiser.
    pub optimizer: Optimizer,
    /// Base learning rate.
    pub lr: f64,
    /// Weight decay.
    pub weight_decay: f64,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Examples per step.
    pub batch_size: usize,
    /// Epochs to train (at most the task's `max_epochs`).
    pub epochs: u32,
    /// Curriculum schedule for sequence skills (`None` elsewhere).
    pub curriculum: Option<String>,
    /// Training-time augmentation of images and 1-D signals: each example is
    /// translated by a random whole number of positions in `-shift..=shift`
    /// along each axis longer than one, zero-filled (0: none).
    pub shift: usize,
}

impl Genome {
    /// The genome in a line of words, as the end of a run prints the champion's.
    pub fn describe(&self) -> String {
        let body = match &self.architecture {
            Architecture::Mlp { widths, residual } => format!(
                "MLP, hidden widths {widths:?}{}",
                if *residual { ", residual" } else { "" }
            ),
            Architecture::Cnn {
                blocks,
                pool,
                hidden,
            } => format!(
                "CNN, blocks (channels, kernel) {blocks:?}, {pool:?} pooling{}",
                if *hidden > 0 {
                    format!(", dense {hidden}")
                } else {
                    String::new()
                }
            ),
            Architecture::Cell {
                ops,
                cells,
                channels,
            } => format!("{cells} cells of {channels} channels, edges {ops:?}"),
            Architecture::Transformer {
                layers,
                heads,
                width,
                ff_width,
            } => format!(
                "transformer, {layers} layers, {heads} heads, width {width}, feed-forward {ff_width}"
            ),
        };
        let layered = match self.architecture {
            Architecture::Mlp { .. } | Architecture::Cnn { .. } => {
                format!("{:?} activation, {:?} norm, ", self.activation, self.norm)
            }
            Architecture::Cell { .. } | Architecture::Transformer { .. } => String::new(),
        };
        format!(
            "{body}; {layered}dropout {}; {:?} lr {} ({:?}), weight decay {}, batch {}, {} epochs{}",
            self.dropout,
            self.optimizer,
            self.lr,
            self.schedule,
            self.weight_decay,
            self.batch_size,
            self.epochs,
            if self.shift > 0 {
                format!(", shifts of up to {}", self.shift)
            } else {
                String::new()
            }
        )
    }
}

/// Reads a genome of `model` from `params`, training at most `max_epochs`.
pub fn genome(model: &str, params: &Params, max_epochs: u32) -> Result<Genome, TrainError> {
    let reader = Reader { model, params };
    check_names(model, params.keys().map(String::as_str))?;
    let architecture = match model {
        "mlp" => {
            let depth = reader.count("depth", 2, 0, 16)?;
            let width = reader.count("width", 64, 1, 4096)?;
            let widths = (1..=depth)
                .map(|i| reader.count(&format!("width_{i}"), width, 1, 4096))
                .collect::<Result<_, _>>()?;
            Architecture::Mlp {
                widths,
                residual: reader.flag("residual", false)?,
            }
        }
        "cnn" => {
            let blocks = reader.count("blocks", 2, 1, 8)?;
            let channels = reader.count("channels", 16, 1, 512)?;
            let kernel = reader.count("kernel", 3, 1, 9)?;
            let blocks = (1..=blocks)
                .map(|i| {
                    Ok((
                        reader.count(&format!("channels_{i}"), channels, 1, 512)?,
                        reader.count(&format!("kernel_{i}"), kernel, 1, 9)?,
                    ))
                })
                .collect::<Result<_, TrainError>>()?;
            let pool = match reader.choice("pool", "max", &["none", "max", "avg"])? {
                "none" => Pool::None,
                "avg" => Pool::Avg,
                _ => Pool::Max,
            };
            Architecture::Cnn {
                blocks,
                pool,
                hidden: reader.count("hidden", 0, 0, 4096)?,
            }
        }
        "cell" => {
            let mut ops = [CellOp::None; 6];
            for (i, op) in ops.iter_mut().enumerate() {
                *op = match reader.choice(
                    &format!("op{i}"),
                    "nor_conv_3x3",
                    &[
                        "none",
                        "skip_connect",
                        "skip",
                        "nor_conv_1x1",
                        "conv1x1",
                        "nor_conv_3x3",
                        "conv3x3",
                        "avg_pool_3x3",
                        "avg_pool",
                    ],
                )? {
                    "none" => CellOp::None,
                    "skip_connect" | "skip" => CellOp::Skip,
                    "nor_conv_1x1" | "conv1x1" => CellOp::Conv1x1,
                    "avg_pool_3x3" | "avg_pool" => CellOp::AvgPool,
                    _ => CellOp::Conv3x3,
                };
            }
            Architecture::Cell {
                ops,
                cells: reader.count("cells", 2, 1, 8)?,
                channels: reader.count("channels", 16, 1, 256)?,
            }
        }
        "transformer" => {
            let width = reader.count("width", 64, 4, 1024)?;
            let heads = reader.count("heads", 4, 1, 32)?;
            if width % heads != 0 {
                return Err(TrainError::Genome(format!(
                    "width = {width} is not a multiple of heads = {heads}; hint: choose widths divisible by every heads value"
                )));
            }
            Architecture::Transformer {
                layers: reader.count("layers", 2, 1, 12)?,
                heads,
                width,
                ff_width: reader.count("ff_width", 2 * width, 1, 8192)?,
            }
        }
        other => {
            return Err(TrainError::Genome(format!(
                "unknown model `{other}`; hint: one of {}",
                MODELS.join(", ")
            )));
        }
    };
    let optimizer = match reader.choice("optimizer", "adam", &["sgd", "adam", "adamw"])? {
        "sgd" => Optimizer::Sgd {
            momentum: reader.real("momentum", 0.9, 0.0, 0.999)?,
        },
        "adamw" => Optimizer::AdamW,
        _ => Optimizer::Adam,
    };
    let schedule = match reader.choice(
        "schedule",
        "constant",
        &["constant", "cosine", "warmup_cosine"],
    )? {
        "cosine" => Schedule::Cosine,
        "warmup_cosine" => Schedule::WarmupCosine {
            warmup_epochs: reader.count("warmup_epochs", 1, 0, 1000)? as u32,
        },
        _ => Schedule::Constant,
    };
    let max_epochs = max_epochs.max(1);
    Ok(Genome {
        architecture,
        activation: match reader.choice("activation", "relu", &["relu", "gelu", "tanh", "silu"])? {
            "gelu" => Activation::Gelu,
            "tanh" => Activation::Tanh,
            "silu" => Activation::Silu,
            _ => Activation::Relu,
        },
        norm: match reader.choice("norm", "none", &["none", "batch", "layer"])? {
            "batch" => Norm::Batch,
            "layer" => Norm::Layer,
            _ => Norm::None,
        },
        dropout: reader.real("dropout", 0.0, 0.0, 0.95)?,
        optimizer,
        lr: reader.real("lr", 1e-3, 1e-7, 10.0)?,
        weight_decay: reader.real("weight_decay", 0.0, 0.0, 1.0)?,
        schedule,
        batch_size: reader.count("batch_size", 32, 1, 65_536)?,
        epochs: (reader.count("epochs", max_epochs as usize, 1, 100_000)? as u32).min(max_epochs),
        curriculum: match reader.params.get("curriculum") {
            Some(_) => Some(
                reader
                    .choice(
                        "curriculum",
                        "fixed",
                        &["fixed", "linear", "competence", "self_paced"],
                    )?
                    .to_string(),
            ),
            None => None,
        },
        shift: reader.count("shift", 0, 0, 8)?,
    })
}

/// The parameter names `model` understands (for docs and error hints).
pub fn known_names(model: &str) -> Vec<String> {
    let (own, layered): (&[&str], &[&str]) = match model {
        "mlp" => (&["depth", "width", "width_<i>", "residual"], LAYERED),
        "cnn" => (
            &[
                "blocks",
                "channels",
                "channels_<i>",
                "kernel",
                "kernel_<i>",
                "pool",
                "hidden",
            ],
            LAYERED,
        ),
        "cell" => (
            &[
                "op0", "op1", "op2", "op3", "op4", "op5", "cells", "channels",
            ],
            &[],
        ),
        "transformer" => (&["layers", "heads", "width", "ff_width"], &[]),
        _ => (&[], &[]),
    };
    own.iter()
        .chain(layered)
        .chain(COMMON)
        .map(|s| s.to_string())
        .collect()
}

/// Checks that `model` can read the examples of `dataset` (of `shape`): the
/// transformer embeds token ids, so it needs a sequence dataset; on features or
/// pixels it would cast every value to a token id.
pub fn check_data(model: &str, dataset: &str, shape: &Shape) -> Result<(), TrainError> {
    if model == "transformer" && !matches!(shape, Shape::Sequence { .. }) {
        let what = match *shape {
            Shape::Tabular { features } => format!("{features} float features"),
            Shape::Image {
                channels,
                height,
                width,
            } => format!("{channels}×{height}×{width} images"),
            Shape::Sequence { .. } => unreachable!("matched above"),
        };
        return Err(TrainError::Unsupported(format!(
            "model `transformer` reads token ids, but dataset `{dataset}` holds {what}: each value would be cast to a token id; hint: use model mlp, cnn or cell on `{dataset}`, or the transformer on a sequence dataset (mod_add, parity, sort, copy, reverse, addition)"
        )));
    }
    Ok(())
}

/// Checks that `model` is a model family and understands every parameter name.
pub fn check_names<'a>(
    model: &str,
    names: impl IntoIterator<Item = &'a str>,
) -> Result<(), TrainError> {
    if !MODELS.contains(&model) {
        return Err(TrainError::Genome(format!(
            "unknown model `{model}`; hint: one of {}",
            MODELS.join(", ")
        )));
    }
    let known = known_names(model);
    for name in names {
        let understood = known.iter().any(|k| match k.strip_suffix("<i>") {
            Some(prefix) => name
                .strip_prefix(prefix)
                .is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit())),
            None => k == name,
        });
        if !understood && LAYERED.contains(&name) {
            let own = if model == "cell" {
                "its cells' edges are fixed ReLU, convolution and batch-norm operations"
            } else {
                "its encoder layers have their own GELU and layer norm"
            };
            return Err(TrainError::Genome(format!(
                "parameter `{name}` means nothing to model `{model}`: {own}, so searching it would change nothing; hint: remove `{name}` from [space], or use model mlp or cnn"
            )));
        }
        if !understood {
            return Err(TrainError::Genome(format!(
                "parameter `{name}` means nothing to model `{model}`; hint: it understands {}",
                known.join(", ")
            )));
        }
    }
    Ok(())
}

struct Reader<'a> {
    model: &'a str,
    params: &'a Params,
}

impl Reader<'_> {
    fn bad(&self, name: &str, value: &ParamValue, wanted: &str) -> TrainError {
        TrainError::Genome(format!(
            "parameter `{name}` = {} of model `{}`: expected {wanted}",
            value.to_plain_string(),
            self.model
        ))
    }

    fn count(
        &self,
        name: &str,
        default: usize,
        min: usize,
        max: usize,
    ) -> Result<usize, TrainError> {
        match self.params.get(name) {
            None => Ok(default),
            Some(value @ ParamValue::Int(i)) => usize::try_from(*i)
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| self.bad(name, value, &format!("an integer in {min}..={max}"))),
            Some(value) => Err(self.bad(name, value, "an integer")),
        }
    }

    fn real(&self, name: &str, default: f64, min: f64, max: f64) -> Result<f64, TrainError> {
        match self.params.get(name) {
            None => Ok(default),
            Some(value) => value
                .as_f64()
                .filter(|x| (min..=max).contains(x))
                .ok_or_else(|| self.bad(name, value, &format!("a number in [{min}, {max}]"))),
        }
    }

    fn flag(&self, name: &str, default: bool) -> Result<bool, TrainError> {
        match self.params.get(name) {
            None => Ok(default),
            Some(ParamValue::Bool(b)) => Ok(*b),
            Some(ParamValue::Int(i @ (0 | 1))) => Ok(*i == 1),
            Some(ParamValue::Str(s)) if s == "true" || s == "false" => Ok(s == "true"),
            Some(value) => Err(self.bad(name, value, "true or false")),
        }
    }

    fn choice<'c>(
        &self,
        name: &str,
        default: &'c str,
        options: &[&'c str],
    ) -> Result<&'c str, TrainError> {
        match self.params.get(name) {
            None => Ok(default),
            Some(ParamValue::Str(s)) => options
                .iter()
                .find(|o| **o == s.as_str())
                .copied()
                .ok_or_else(|| {
                    self.bad(
                        name,
                        &ParamValue::Str(s.clone()),
                        &format!("one of {}", options.join(", ")),
                    )
                }),
            Some(value) => Err(self.bad(name, value, &format!("one of {}", options.join(", ")))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(name: &str, value: &str) -> Params {
        Params::from([(name.to_string(), ParamValue::Str(value.to_string()))])
    }

    /// A parameter a model ignores is an error naming the key and the model, as
    /// any parameter no genome understands is.
    #[test]
    fn activation_and_norm_mean_nothing_to_cells_and_transformers() {
        for model in ["cell", "transformer"] {
            for (key, value) in [("activation", "gelu"), ("norm", "batch")] {
                let error = genome(model, &one(key, value), 1).expect_err("ignored key");
                let text = error.to_string();
                assert!(
                    text.starts_with(&format!(
                        "parameter `{key}` means nothing to model `{model}`: "
                    )) && text.contains("hint: remove"),
                    "{text}"
                );
                assert!(!known_names(model).contains(&key.to_string()));
            }
        }
        for model in ["mlp", "cnn"] {
            let g = genome(model, &one("activation", "gelu"), 1).expect("used");
            assert_eq!(g.activation, Activation::Gelu);
            let g = genome(model, &one("norm", "layer"), 1).expect("used");
            assert_eq!(g.norm, Norm::Layer);
            assert!(g.describe().contains("Layer norm"));
        }
        let cell = genome("cell", &Params::new(), 1).expect("defaults");
        assert!(
            !cell.describe().contains("activation"),
            "{}",
            cell.describe()
        );
    }

    #[test]
    fn the_transformer_needs_a_sequence_dataset() {
        let digits = Shape::Image {
            channels: 1,
            height: 8,
            width: 8,
        };
        let error = check_data("transformer", "digits", &digits).expect_err("images");
        assert!(
            error.to_string().starts_with(
                "model `transformer` reads token ids, but dataset `digits` holds 1×8×8 images"
            ) && error
                .to_string()
                .contains("; hint: use model mlp, cnn or cell"),
            "{error}"
        );
        let iris = Shape::Tabular { features: 4 };
        assert!(check_data("transformer", "iris", &iris).is_err());
        let parity = Shape::Sequence {
            length: 8,
            vocab: 3,
        };
        check_data("transformer", "parity", &parity).expect("tokens");
        for model in ["mlp", "cnn", "cell"] {
            check_data(model, "digits", &digits).expect("fits");
        }
    }
}
