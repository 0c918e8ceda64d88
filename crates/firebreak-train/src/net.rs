//! The burn modules a genome builds: one [`Net`] type whose body is an MLP, a
//! CNN, a cell network or a transformer encoder, and a linear classifier head.
//! Inputs arrive as float tensors `[batch, values]` (tokens as exact floats for
//! sequence data) and are reshaped here to what the body needs.

use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AvgPool2d, AvgPool2dConfig};
use burn::nn::transformer::{
    TransformerEncoder, TransformerEncoderConfig, TransformerEncoderInput,
};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Embedding, EmbeddingConfig, Identity,
    LayerNorm, LayerNormConfig, Linear, LinearConfig, PaddingConfig2d,
};
use burn::tensor::activation;
use burn::tensor::{Device, Int, Tensor};
use firebreak_data::Shape;

use crate::genome::{Activation, Architecture, CellOp, Genome, Norm, Pool};

/// A normalisation layer.
#[derive(Module, Debug)]
enum NormLayer {
    Batch(BatchNorm),
    Layer(LayerNorm),
}

impl NormLayer {
    fn new(norm: Norm, features: usize, device: &Device) -> Option<Self> {
        match norm {
            Norm::None => None,
            Norm::Batch => Some(NormLayer::Batch(
                BatchNormConfig::new(features).init(device),
            )),
            Norm::Layer => Some(NormLayer::Layer(
                LayerNormConfig::new(features).init(device),
            )),
        }
    }

    /// Normalises `[batch, features]`.
    fn dense(&self, x: Tensor<2>) -> Tensor<2> {
        match self {
            NormLayer::Batch(n) => n.forward(x),
            NormLayer::Layer(n) => n.forward(x),
        }
    }

    /// Normalises `[batch, channels, h, w]` (layer norm over channels).
    fn map(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            NormLayer::Batch(n) => n.forward(x),
            NormLayer::Layer(n) => n.forward(x.swap_dims(1, 3)).swap_dims(1, 3),
        }
    }
}

fn activate<const D: usize>(activation: Activation, x: Tensor<D>) -> Tensor<D> {
    match activation {
        Activation::Relu => activation::relu(x),
        Activation::Gelu => activation::gelu(x),
        Activation::Tanh => activation::tanh(x),
        Activation::Silu => activation::silu(x),
    }
}

/// A hidden dense layer.
#[derive(Module, Debug)]
struct Dense {
    linear: Linear,
    norm: Option<NormLayer>,
    residual: bool,
}

/// A convolution block.
#[derive(Module, Debug)]
struct ConvBlock {
    conv: Conv2d,
    norm: Option<NormLayer>,
    pool: bool,
}

/// One edge of a cell.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)] // one per cell edge; burn's derive takes no Box
enum Edge {
    Skip(Identity),
    Conv(ConvNorm),
    Pool(AvgPool2d),
}

/// A convolution followed by batch normalisation.
#[derive(Module, Debug)]
struct ConvNorm {
    conv: Conv2d,
    norm: BatchNorm,
}

/// A stem convolution and stacked cells.
#[derive(Module, Debug)]
struct Cells {
    stem: ConvNorm,
    cells: Vec<Cell>,
}

/// Token and position embeddings and an encoder.
#[derive(Module, Debug)]
struct Encoder {
    tokens: Embedding,
    positions: Embedding,
    encoder: TransformerEncoder,
}

/// A NAS-Bench-201-style cell: node i sums its incoming edges from nodes j < i.
#[derive(Module, Debug)]
struct Cell {
    /// `(to, from, op)` for every edge that is not `none`.
    edges: Vec<Edge>,
    #[module(skip)]
    wiring: Vec<(usize, usize)>,
}

/// The network's body.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)] // one per network; burn's derive takes no Box
enum Body {
    Mlp(Vec<Dense>),
    Cnn(Vec<ConvBlock>),
    Cells(Cells),
    Transformer(Encoder),
}

/// A built network: body, optional hidden dense layer, classifier.
#[derive(Module, Debug)]
pub struct Net {
    body: Body,
    hidden: Option<Linear>,
    dropout: Dropout,
    head: Linear,
    #[module(skip)]
    shape: Shape,
    #[module(skip)]
    activation: Activation,
    #[module(skip)]
    pool: Pool,
    #[module(skip)]
    targets: usize,
    #[module(skip)]
    classes: usize,
}

/// The (height, width) of an input's map and its channels, for convolutional bodies.
fn map_shape(shape: &Shape) -> (usize, usize, usize) {
    match *shape {
        Shape::Image {
            channels,
            height,
            width,
        } => (channels, height, width),
        Shape::Tabular { features } => (1, 1, features),
        Shape::Sequence { length, .. } => (1, 1, length),
    }
}

/// A square kernel on 2-D maps, a 1×k one on 1-D data (height 1).
fn kernel(height: usize, k: usize) -> [usize; 2] {
    if height == 1 { [1, k] } else { [k, k] }
}

impl Net {
    /// Builds the network of `genome` for inputs of `shape` and `classes` outputs at
    /// each of `targets` positions.
    pub fn new(
        genome: &Genome,
        shape: &Shape,
        classes: usize,
        targets: usize,
        device: &Device,
    ) -> Self {
        let inputs = shape.size();
        let (channels, height, width) = map_shape(shape);
        let (body, features) = match &genome.architecture {
            Architecture::Mlp { widths, residual } => {
                let mut layers = Vec::new();
                let mut from = inputs;
                for &to in widths {
                    layers.push(Dense {
                        linear: LinearConfig::new(from, to).init(device),
                        norm: NormLayer::new(genome.norm, to, device),
                        residual: *residual && from == to,
                    });
                    from = to;
                }
                (Body::Mlp(layers), from)
            }
            Architecture::Cnn { blocks, pool, .. } => {
                let mut layers = Vec::new();
                let (mut c, mut h, mut w) = (channels, height, width);
                for &(out, k) in blocks {
                    let pooled = *pool != Pool::None && w >= 2;
                    layers.push(ConvBlock {
                        conv: Conv2dConfig::new([c, out], kernel(h, k))
                            .with_padding(PaddingConfig2d::Same)
                            .init(device),
                        norm: NormLayer::new(genome.norm, out, device),
                        pool: pooled,
                    });
                    c = out;
                    if pooled {
                        w /= 2;
                        if h >= 2 {
                            h /= 2;
                        }
                    }
                }
                (Body::Cnn(layers), c * h * w)
            }
            Architecture::Cell {
                ops,
                cells,
                channels: c,
            } => {
                let wiring = [(1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2)];
                let cell = || {
                    let mut edges = Vec::new();
                    let mut used = Vec::new();
                    for (op, &(to, from)) in ops.iter().zip(&wiring) {
                        let edge = match op {
                            CellOp::None => continue,
                            CellOp::Skip => Edge::Skip(Identity::new()),
                            CellOp::Conv1x1 | CellOp::Conv3x3 => {
                                let k = if *op == CellOp::Conv1x1 { 1 } else { 3 };
                                Edge::Conv(ConvNorm::new(*c, *c, kernel(height, k), device))
                            }
                            CellOp::AvgPool => Edge::Pool(
                                AvgPool2dConfig::new(kernel(height, 3))
                                    .with_strides([1, 1])
                                    .with_padding(PaddingConfig2d::Same)
                                    .with_count_include_pad(false)
                                    .init(),
                            ),
                        };
                        edges.push(edge);
                        used.push((to, from));
                    }
                    Cell {
                        edges,
                        wiring: used,
                    }
                };
                let body = Body::Cells(Cells {
                    stem: ConvNorm::new(channels, *c, kernel(height, 3), device),
                    cells: (0..*cells).map(|_| cell()).collect(),
                });
                (body, *c)
            }
            Architecture::Transformer {
                layers,
                heads,
                width: d,
                ff_width,
            } => {
                let (length, vocab) = match *shape {
                    Shape::Sequence { length, vocab } => (length, vocab),
                    _ => (inputs, 256),
                };
                let body = Body::Transformer(Encoder {
                    tokens: EmbeddingConfig::new(vocab, *d).init(device),
                    positions: EmbeddingConfig::new(length, *d).init(device),
                    encoder: TransformerEncoderConfig::new(*d, *ff_width, *heads, *layers)
                        .with_dropout(genome.dropout)
                        .with_norm_first(true)
                        .init(device),
                });
                (body, *d)
            }
        };
        let (hidden, features) = match genome.architecture {
            Architecture::Cnn { hidden, .. } if hidden > 0 => (
                Some(LinearConfig::new(features, hidden).init(device)),
                hidden,
            ),
            _ => (None, features),
        };
        let transformer = matches!(genome.architecture, Architecture::Transformer { .. });
        // Sequence labels come one per position; other bodies predict them all at once.
        let outputs = if transformer {
            classes
        } else {
            classes * targets
        };
        let pool = match genome.architecture {
            Architecture::Cnn { pool, .. } => pool,
            _ => Pool::None,
        };
        Net {
            body,
            hidden,
            dropout: DropoutConfig::new(genome.dropout).init(),
            head: LinearConfig::new(features, outputs).init(device),
            shape: shape.clone(),
            activation: genome.activation,
            pool,
            targets,
            classes,
        }
    }

    /// Logits `[batch · targets, classes]` for inputs `[batch, values]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let [batch, _] = x.dims();
        let (channels, height, width) = map_shape(&self.shape);
        let act = self.activation;
        let features = match &self.body {
            Body::Mlp(layers) => {
                let mut x = x;
                for layer in layers {
                    let mut y = layer.linear.forward(self.dropout.forward(x.clone()));
                    if let Some(norm) = &layer.norm {
                        y = norm.dense(y);
                    }
                    let y = activate(act, y);
                    x = if layer.residual { x + y } else { y };
                }
                x
            }
            Body::Cnn(blocks) => {
                let mut x = x.reshape([batch, channels, height, width]);
                for block in blocks {
                    let mut y = crate::conv::conv2d(&block.conv, x);
                    if let Some(norm) = &block.norm {
                        y = norm.map(y);
                    }
                    y = activate(act, y);
                    if block.pool {
                        let [_, _, h, _] = y.dims();
                        let k = if h >= 2 { [2, 2] } else { [1, 2] };
                        y = match self.pool {
                            Pool::Avg => AvgPool2dConfig::new(k).with_strides(k).init().forward(y),
                            _ => crate::pool::max_pool2d(y, k),
                        };
                    }
                    x = y;
                }
                let [b, c, h, w] = x.dims();
                x.reshape([b, c * h * w])
            }
            Body::Cells(Cells { stem, cells }) => {
                let mut x = stem.forward(x.reshape([batch, channels, height, width]));
                for cell in cells {
                    x = cell.forward(x);
                }
                let [b, c, h, w] = x.dims();
                x.reshape([b, c, h * w]).mean_dim(2).reshape([b, c])
            }
            Body::Transformer(Encoder {
                tokens,
                positions,
                encoder,
            }) => {
                let [b, length] = x.dims();
                let device = x.device();
                let ids: Tensor<2, Int> = x.int();
                let pos = Tensor::<1, Int>::arange(0..length as i64, &device)
                    .reshape([1, length])
                    .repeat_dim(0, b);
                let h = tokens.forward(ids) + positions.forward(pos);
                let h = encoder.forward(TransformerEncoderInput::new(h));
                let [_, _, d] = h.dims();
                h.reshape([b * length, d])
            }
        };
        let features = match &self.hidden {
            Some(hidden) => activate(act, hidden.forward(self.dropout.forward(features))),
            None => features,
        };
        let logits = self.head.forward(self.dropout.forward(features));
        let [rows, _] = logits.dims();
        logits.reshape([rows * self.outputs_per_row(), self.classes])
    }

    /// Trainable parameters (batch normalisation's running statistics are state,
    /// not parameters). Counts on a network built on an autodiff device.
    pub fn trainable_params(&self) -> usize {
        struct Count(usize);
        impl ModuleVisitor for Count {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                if param.val().is_require_grad() {
                    self.0 += param.lazy_shape().num_elements();
                }
            }
        }
        let mut count = Count(0);
        self.visit(&mut count);
        count.0
    }

    fn outputs_per_row(&self) -> usize {
        match self.body {
            Body::Transformer(_) => 1,
            _ => self.targets,
        }
    }

    /// Multiply-adds per example of a forward pass, times two: an estimate of
    /// FLOPs per sample that counts dense and convolution layers (attention's
    /// score products included), not activations or normalisations.
    pub fn flops_per_sample(&self) -> u64 {
        let (mut c, mut h, mut w) = map_shape(&self.shape);
        let dense = |l: &Linear| {
            let [i, o]: [usize; 2] = l.weight.shape().dims();
            (i * o) as u64
        };
        let conv = |k: &Conv2d, h: usize, w: usize| {
            let [o, i, kh, kw]: [usize; 4] = k.weight.shape().dims();
            (o * i * kh * kw * h * w) as u64
        };
        let mut macs = 0u64;
        match &self.body {
            Body::Mlp(layers) => macs += layers.iter().map(|l| dense(&l.linear)).sum::<u64>(),
            Body::Cnn(blocks) => {
                for block in blocks {
                    macs += conv(&block.conv, h, w);
                    let [o, ..]: [usize; 4] = block.conv.weight.shape().dims();
                    c = o;
                    if block.pool {
                        if h >= 2 {
                            h /= 2;
                        }
                        w /= 2;
                    }
                }
                let _ = c;
            }
            Body::Cells(Cells { stem, cells }) => {
                macs += conv(&stem.conv, h, w);
                for cell in cells {
                    for edge in &cell.edges {
                        if let Edge::Conv(k) = edge {
                            macs += conv(&k.conv, h, w);
                        }
                    }
                }
            }
            Body::Transformer(Encoder { encoder, .. }) => {
                let length = self.targets as u64;
                let d = encoder.d_model as u64;
                let ff = encoder.d_ff as u64;
                let per_layer = length * (4 * d * d + 2 * d * ff) + 2 * length * length * d;
                macs += per_layer * encoder.n_layers as u64;
                return 2 * (macs + dense(&self.head) * length);
            }
        }
        macs += self.hidden.as_ref().map(dense).unwrap_or(0);
        macs += dense(&self.head);
        2 * macs
    }
}

impl Cell {
    fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        let mut nodes: Vec<Option<Tensor<4>>> = vec![Some(input.clone()), None, None, None];
        for to in 1..4 {
            let mut sum: Option<Tensor<4>> = None;
            for (edge, &(target, from)) in self.edges.iter().zip(&self.wiring) {
                if target != to {
                    continue;
                }
                let Some(x) = nodes[from].clone() else {
                    continue;
                };
                let y = match edge {
                    Edge::Skip(_) => x,
                    Edge::Conv(conv) => conv.forward(activation::relu(x)),
                    Edge::Pool(pool) => pool.forward(x),
                };
                sum = Some(match sum {
                    Some(s) => s + y,
                    None => y,
                });
            }
            nodes[to] = sum;
        }
        // A cell whose output node is unreachable outputs zeros, as in NAS-Bench-201.
        nodes[3].take().unwrap_or_else(|| input.zeros_like())
    }
}

impl ConvNorm {
    fn new(from: usize, to: usize, kernel: [usize; 2], device: &Device) -> Self {
        ConvNorm {
            conv: Conv2dConfig::new([from, to], kernel)
                .with_padding(PaddingConfig2d::Same)
                .with_bias(false)
                .init(device),
            norm: BatchNormConfig::new(to).init(device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.norm.forward(self.conv.forward(x))
    }
}
