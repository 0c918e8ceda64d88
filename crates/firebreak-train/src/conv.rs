//! The CNN bodies' convolutions as matrix products, one per direction over
//! the whole batch: the output `[out, batch · pixels]` is the weight
//! `[out, in · kh · kw]` times the input's patches `[in · kh · kw, batch ·
//! pixels]` (im2col, examples side by side along the columns), regathered
//! into NCHW with the bias added; the backward regathers the output gradient
//! as `[out, batch · pixels]` once, multiplies it by the patches transposed
//! (a strided view) for the weight gradient, and folds `weightᵀ · output
//! gradient` back onto the input for its gradient. The products run on the
//! `flex` backend's `gemm`; the patches, the fold, the regathering and the
//! sums are loops here over contiguous `f32` memory.
//!
//! Why: on the `flex` backend, burn's convolution built its patches one
//! element at a time through a generic 3-D index walk, its input gradient was
//! a generic transposed convolution, and its weight gradient a convolution of
//! the input and the output gradient with batch and channel axes swapped; the
//! convolutions were three quarters of a small CNN's training step. A first
//! version here ran one product per example (batched `gemm`), which kept the
//! output NCHW without a copy and halved the 28×28 benchmark's step, but on
//! small maps (8×8 digits, 16–64 channels) each example's product was too
//! small for `gemm`, and the weight gradient went through per-example
//! products `[batch, out, taps]` and a sum over examples: slower than burn.
//! One product per direction with `batch · pixels` columns keeps `gemm` busy
//! at any map size and sums the weight gradient over examples inside the
//! product; the price, two regatherings of output-sized data, is a ninth of
//! the patches' size for 3×3 kernels.
//!
//! Plugged in as [`crate::pool`] is: below the tensor API, on the `flex`
//! backend with or without autodiff (a custom backward step), for stride 1,
//! dilation 1, one group, a bias and `Same` padding with odd kernels (what
//! `net.rs` builds). Anything else is burn's `Conv2d::forward`. Sums run in
//! another order than burn's, so values differ from it by rounding, always the
//! same way for the same inputs.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::{
    BalancedCheckpointing, CheckpointStrategy, NoCheckpointing,
};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Flex};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::{DType, Shape, Tensor, TensorData};

/// The geometry of one convolution: stride 1, dilation 1, one group.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geometry {
    /// `[batch, in, height, width]`.
    input: [usize; 4],
    /// `[out, in, kh, kw]`.
    weight: [usize; 4],
    /// Zeros before the first row and column.
    padding: [usize; 2],
    /// `[height, width]` of the output.
    output: [usize; 2],
}

impl Geometry {
    fn pixels(&self) -> usize {
        self.output[0] * self.output[1]
    }

    /// Rows of an example's patches: `in · kh · kw`.
    fn taps(&self) -> usize {
        let [_, channels_in, kh, kw] = self.weight;
        channels_in * kh * kw
    }
}

/// `conv.forward(x)`, computed here where it applies.
pub(crate) fn conv2d(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let [kh, kw] = conv.kernel_size;
    let supported = x.dtype() == DType::F32
        && conv.stride == [1, 1]
        && conv.dilation == [1, 1]
        && conv.groups == 1
        && matches!(conv.padding, PaddingConfig2d::Same)
        && kh % 2 == 1
        && kw % 2 == 1;
    let Some(bias) = conv.bias.as_ref().filter(|_| supported) else {
        return conv.forward(x);
    };
    let (weight, bias) = (conv.weight.val(), bias.val());
    let [batch, channels_in, height, width] = x.dims();
    let geometry = Geometry {
        input: [batch, channels_in, height, width],
        weight: weight.dims(),
        padding: [kh / 2, kw / 2],
        output: [height, width],
    };
    // A failed conversion consumes its input, hence the (reference-counted) clones.
    macro_rules! route {
        ($backend:ty, $run:expr) => {
            if let (Ok(x), Ok(weight), Ok(bias)) = (
                x.clone().try_into_primitive::<$backend>(),
                weight.clone().try_into_primitive::<$backend>(),
                bias.clone().try_into_primitive::<$backend>(),
            ) {
                return Tensor::from_primitive::<$backend>($run(x, weight, bias, geometry));
            }
        };
    }
    route!(Autodiff<Flex>, tracked::<NoCheckpointing>);
    route!(Autodiff<Flex, BalancedCheckpointing>, tracked::<BalancedCheckpointing>);
    route!(Flex, |x, weight, bias, geometry| {
        forward(&patches(&x, geometry), &weight, &bias, geometry)
    });
    conv.forward(x)
}

/// The forward on autodiff tensors, registering [`FastConv2d`] when any input
/// is tracked.
fn tracked<C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<Flex, C>>,
    weight: FloatTensor<Autodiff<Flex, C>>,
    bias: FloatTensor<Autodiff<Flex, C>>,
    geometry: Geometry,
) -> FloatTensor<Autodiff<Flex, C>> {
    let nodes = [x.node(), weight.node(), bias.node()];
    let patches = patches(x.primitive(), geometry);
    let output = forward(&patches, weight.primitive(), bias.primitive(), geometry);
    match <FastConv2d as Backward<Flex, 3>>::prepare::<C>(FastConv2d, nodes)
        .compute_bound()
        .stateful()
    {
        // The patches and the weight are kept, not checkpointed: the patches are
        // no graph node, and recomputing them would cost what keeping saves.
        OpsKind::Tracked(prep) => prep.finish(
            ConvState {
                patches,
                weight: weight.primitive().clone(),
                geometry,
            },
            output,
        ),
        OpsKind::UnTracked(prep) => prep.finish(output),
    }
}

/// Output `[batch, out, height, width]`: the weight `[out, taps]` times the
/// patches `[taps, batch · pixels]` in one product, then each example's rows
/// gathered into NCHW with the bias added.
fn forward(
    patches: &FlexTensor,
    weight: &FlexTensor,
    bias: &FlexTensor,
    geometry: Geometry,
) -> FlexTensor {
    let [batch, ..] = geometry.input;
    let [channels_out, ..] = geometry.weight;
    let pixels = geometry.pixels();
    let weight = weight
        .to_contiguous()
        .reshape(Shape::new([channels_out, geometry.taps()]));
    // [out, batch · pixels], contiguous.
    let product = Flex::float_matmul(weight, patches.clone());
    let product = contiguous_f32(&product);
    let bias = bias.to_contiguous();
    let bias = contiguous_f32(&bias);
    let mut values = Vec::with_capacity(batch * channels_out * pixels);
    let row_len = batch * pixels;
    if row_len > 0 {
        for example in 0..batch {
            for (row, &b) in product.chunks_exact(row_len).zip(bias) {
                let plane = &row[example * pixels..(example + 1) * pixels];
                values.extend(plane.iter().map(|&value| value + b));
            }
        }
    }
    let [height, width] = geometry.output;
    FlexTensor::from_data(TensorData::new(
        values,
        [batch, channels_out, height, width],
    ))
}

/// The backward step of [`conv2d`].
#[derive(Debug)]
pub(crate) struct FastConv2d;

/// What the backward needs: the forward's patches, the weight and the geometry.
#[derive(Debug, Clone)]
pub(crate) struct ConvState {
    patches: FlexTensor,
    weight: FlexTensor,
    geometry: Geometry,
}

impl Backward<Flex, 3> for FastConv2d {
    type State = ConvState;

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_weight, node_bias] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node).to_contiguous();
        let ConvState {
            patches,
            weight,
            geometry,
        } = ops.state;
        // [out, batch · pixels]: the output gradient as the products' operand.
        let grad_rows = output_rows(contiguous_f32(&grad), geometry);
        drop(grad);
        if let Some(node) = node_bias {
            grads.register::<Flex>(node.id, bias_grad(&grad_rows, geometry));
        }
        if let Some(node) = node_weight {
            grads.register::<Flex>(node.id, weight_grad(&grad_rows, &patches, geometry));
        }
        drop(patches);
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, input_grad(grad_rows, &weight, geometry));
        }
    }
}

fn contiguous_f32(x: &FlexTensor) -> &[f32] {
    x.as_slice::<f32>()
        .unwrap_or_else(|| panic!("conv2d: expected contiguous f32 data, got {x:?}"))
}

/// An NCHW output (gradient) `[batch, out, pixels]` regathered as
/// `[out, batch · pixels]`, the transpose of what [`forward`] does.
fn output_rows(grad: &[f32], geometry: Geometry) -> FlexTensor {
    let [batch, ..] = geometry.input;
    let [channels_out, ..] = geometry.weight;
    let pixels = geometry.pixels();
    let mut rows = Vec::with_capacity(grad.len());
    for channel in 0..channels_out {
        for example in 0..batch {
            let start = (example * channels_out + channel) * pixels;
            rows.extend_from_slice(&grad[start..start + pixels]);
        }
    }
    FlexTensor::from_data(TensorData::new(rows, [channels_out, batch * pixels]))
}

/// The bias gradient: each row of the output gradient `[out, batch · pixels]`
/// summed.
fn bias_grad(grad_rows: &FlexTensor, geometry: Geometry) -> FlexTensor {
    let [channels_out, ..] = geometry.weight;
    let grad_rows = contiguous_f32(grad_rows);
    let row_len = grad_rows.len().checked_div(channels_out).unwrap_or(0);
    let sums = if row_len == 0 {
        vec![0.0f32; channels_out]
    } else {
        grad_rows.chunks_exact(row_len).map(lane_sum).collect()
    };
    FlexTensor::from_data(TensorData::new(sums, [channels_out]))
}

/// Sum of `values` in eight interleaved lanes (which the compiler vectorises;
/// one running sum would be a chain of dependent additions), in a fixed order.
fn lane_sum(values: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let chunks = values.chunks_exact(8);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (lane, &value) in lanes.iter_mut().zip(chunk) {
            *lane += value;
        }
    }
    let mut sum = ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5]))
        + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]));
    for &value in rest {
        sum += value;
    }
    sum
}

/// The weight gradient: the output gradient `[out, batch · pixels]` times the
/// patches transposed `[batch · pixels, taps]`, one product summing over
/// examples and pixels alike (the transpose is a strided view `gemm` reads as
/// it is).
fn weight_grad(grad_rows: &FlexTensor, patches: &FlexTensor, geometry: Geometry) -> FlexTensor {
    let product = Flex::float_matmul(grad_rows.clone(), patches.transpose(0, 1));
    product.to_contiguous().reshape(Shape::new(geometry.weight))
}

/// The input gradient: the weight transposed `[taps, out]` times the output
/// gradient `[out, batch · pixels]`, folded back onto the input positions.
fn input_grad(grad_rows: FlexTensor, weight: &FlexTensor, geometry: Geometry) -> FlexTensor {
    let [channels_out, ..] = geometry.weight;
    let weight = weight
        .to_contiguous()
        .reshape(Shape::new([channels_out, geometry.taps()]))
        .transpose(0, 1);
    let patch_grads = Flex::float_matmul(weight, grad_rows);
    let values = fold(contiguous_f32(&patch_grads), geometry);
    FlexTensor::from_data(TensorData::new(values, geometry.input))
}

/// Walks the patches `[taps, batch · pixels]` in memory order, one output row
/// (`out_w` values) at a time: row `(c, dy, dx)`, then example, then output row
/// `y`; calls `visit` with the patch positions `patch..patch + len` of the row's
/// inside part and the input position `source` its first value reads (rows that
/// read only padding are skipped).
fn for_each_output_row(geometry: Geometry, mut visit: impl FnMut(usize, usize, usize)) {
    let [batch, channels_in, height, width] = geometry.input;
    let [_, _, kh, kw] = geometry.weight;
    let [top, left] = geometry.padding;
    let [out_h, out_w] = geometry.output;
    let example_len = channels_in * height * width;
    let mut row_start = 0;
    for c in 0..channels_in {
        for dy in 0..kh {
            for dx in 0..kw {
                let x_from = left.saturating_sub(dx).min(out_w);
                let x_to = (width + left).saturating_sub(dx).min(out_w);
                for example in 0..batch {
                    for y in 0..out_h {
                        let source_y = (y + dy).checked_sub(top).filter(|&s| s < height);
                        if let Some(source_y) = source_y.filter(|_| x_from < x_to) {
                            let source = example * example_len
                                + (c * height + source_y) * width
                                + (x_from + dx - left);
                            visit(row_start + x_from, x_to - x_from, source);
                        }
                        row_start += out_w;
                    }
                }
            }
        }
    }
}

/// The input's patches `[taps, batch · pixels]`: row `(c, dy, dx)` holds, for
/// each example and output pixel `(y, x)`, the input at
/// `(c, y + dy - top, x + dx - left)`, zero outside the input. Written in
/// memory order.
fn patches(x: &FlexTensor, geometry: Geometry) -> FlexTensor {
    let x = x.to_contiguous();
    let x = contiguous_f32(&x);
    let [batch, ..] = geometry.input;
    let (pixels, taps) = (geometry.pixels(), geometry.taps());
    let mut patches = vec![0.0f32; taps * batch * pixels];
    for_each_output_row(geometry, |patch, len, source| {
        patches[patch..patch + len].copy_from_slice(&x[source..source + len]);
    });
    FlexTensor::from_data(TensorData::new(patches, [taps, batch * pixels]))
}

/// The transpose of [`patches`]: each patch value added back onto the input
/// position it was copied from, reading the patch gradients in memory order.
fn fold(patch_grads: &[f32], geometry: Geometry) -> Vec<f32> {
    let mut input = vec![0.0f32; geometry.input.iter().product()];
    for_each_output_row(geometry, |patch, len, source| {
        let target = &mut input[source..source + len];
        for (value, &g) in target.iter_mut().zip(&patch_grads[patch..patch + len]) {
            *value += g;
        }
    });
    input
}

#[cfg(test)]
mod tests {
    use burn::nn::PaddingConfig2d;
    use burn::nn::conv::Conv2dConfig;
    use burn::tensor::{Device, Tensor, TensorData};

    use super::conv2d;

    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    fn floats(t: Tensor<4>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().expect("f32 data")
    }

    fn close(ours: &[f32], theirs: &[f32], what: &str) {
        assert_eq!(ours.len(), theirs.len(), "{what}: lengths");
        let scale = theirs.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
            assert!(
                (a - b).abs() <= 1e-5 * scale,
                "{what}[{i}]: {a} against burn's {b} (scale {scale})"
            );
        }
    }

    /// Output and the gradients of input, weight and bias of [`conv2d`]
    /// against burn's `Conv2d::forward` on `device`, to rounding (sums run in
    /// another order).
    fn check_on(device: &Device, input: [usize; 4], channels_out: usize, kernel: [usize; 2]) {
        device.seed(5);
        let conv = Conv2dConfig::new([input[1], channels_out], kernel)
            .with_padding(PaddingConfig2d::Same)
            .init(device);
        let n = input.iter().product();
        let data = TensorData::new(values(n, 3), input);
        let [b, _, h, w] = input;
        let weights = TensorData::new(values(b * channels_out * h * w, 9), [b, channels_out, h, w]);
        let run = |ours: bool| {
            let mut x = Tensor::<4>::from_data(data.clone(), device);
            if device.is_autodiff() {
                x = x.require_grad();
            }
            let y = if ours {
                conv2d(&conv, x.clone())
            } else {
                conv.forward(x.clone())
            };
            if !device.is_autodiff() {
                return (floats(y), Vec::new(), Vec::new(), Vec::new());
            }
            let grads = (y.clone() * Tensor::<4>::from_data(weights.clone(), device))
                .sum()
                .backward();
            let grad_x = x.grad(&grads).expect("input gradient");
            let grad_w = conv.weight.grad(&grads).expect("weight gradient");
            let grad_b = conv
                .bias
                .as_ref()
                .and_then(|bias| bias.grad(&grads))
                .expect("bias gradient");
            (
                floats(y),
                floats(grad_x),
                floats(grad_w),
                grad_b.into_data().try_to_vec::<f32>().expect("f32 data"),
            )
        };
        let (ours, theirs) = (run(true), run(false));
        close(&ours.0, &theirs.0, "output");
        close(&ours.1, &theirs.1, "input gradient");
        close(&ours.2, &theirs.2, "weight gradient");
        close(&ours.3, &theirs.3, "bias gradient");
    }

    fn check(input: [usize; 4], channels_out: usize, kernel: [usize; 2]) {
        check_on(&Device::flex().autodiff(), input, channels_out, kernel);
        check_on(
            &Device::flex().autodiff().gradient_checkpointing(),
            input,
            channels_out,
            kernel,
        );
        check_on(&Device::flex(), input, channels_out, kernel);
    }

    #[test]
    fn conv_gradients_match_burn_on_the_cnn_shapes() {
        check([8, 1, 28, 28], 8, [3, 3]);
        check([8, 8, 14, 14], 16, [3, 3]);
    }

    #[test]
    fn conv_gradients_match_burn_on_odd_and_one_dimensional_maps() {
        check([3, 2, 7, 9], 5, [3, 3]);
        check([2, 3, 5, 6], 4, [5, 5]);
        check([4, 2, 1, 40], 3, [1, 3]);
        check([2, 2, 1, 1], 3, [3, 3]);
    }

    #[test]
    fn conv_gradients_match_burn_on_digits_like_maps() {
        check([5, 64, 8, 8], 64, [3, 3]);
        check([5, 24, 8, 8], 24, [5, 5]);
    }
}
