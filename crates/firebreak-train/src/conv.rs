//! The CNN bodies' convolutions as matrix products: each example's output
//! `[out, pixels]` is the weight `[out, in · kh · kw]` times the input's patches
//! `[in · kh · kw, pixels]` (im2col), plus the bias; the backward reuses the
//! patches for the weight gradient and folds `weightᵀ · output gradient` back
//! onto the input for its gradient. The products run on the `flex` backend's
//! batched `gemm`; the patches, the fold and the sums are loops here over
//! contiguous NCHW `f32` memory.
//!
//! Why: on the `flex` backend, burn's convolution built its patches one
//! element at a time through a generic 3-D index walk (a sixth of a small CNN's
//! training step), its input gradient was a generic transposed convolution,
//! and its weight gradient a convolution of the input and the output gradient
//! with batch and channel axes swapped (both copied into other layouts, then
//! convolved with the whole feature map as the kernel); with the bias
//! gradient's transposing copy, the convolutions were three quarters of the
//! step. Products in this shape need no layout change at all: batched over
//! examples, the output comes out NCHW.
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

/// Output `[batch, out, height, width]`: weight times each example's patches,
/// plus the bias.
fn forward(
    patches: &FlexTensor,
    weight: &FlexTensor,
    bias: &FlexTensor,
    geometry: Geometry,
) -> FlexTensor {
    let [batch, ..] = geometry.input;
    let [channels_out, ..] = geometry.weight;
    let pixels = geometry.pixels();
    // [1, out, taps] (broadcast over examples) x [batch, taps, pixels].
    let weight = weight
        .to_contiguous()
        .reshape(Shape::new([1, channels_out, geometry.taps()]));
    let product = Flex::float_matmul(weight, patches.clone()).to_contiguous();
    let mut values = contiguous_f32(&product).to_vec();
    drop(product);
    let bias = bias.to_contiguous();
    let bias = contiguous_f32(&bias);
    if pixels > 0 {
        for plane_and_bias in values
            .chunks_exact_mut(channels_out * pixels)
            .flat_map(|example| example.chunks_exact_mut(pixels).zip(bias))
        {
            let (plane, &b) = plane_and_bias;
            for value in plane {
                *value += b;
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
        let [batch, ..] = geometry.input;
        let [channels_out, ..] = geometry.weight;
        // [batch, out, pixels]: the output gradient as the products' operand.
        let grad_rows = grad.reshape(Shape::new([batch, channels_out, geometry.pixels()]));
        if let Some(node) = node_bias {
            grads.register::<Flex>(node.id, bias_grad(&grad, geometry));
        }
        if let Some(node) = node_weight {
            grads.register::<Flex>(node.id, weight_grad(&grad_rows, patches, geometry));
        }
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, input_grad(grad_rows, &weight, geometry));
        }
    }
}

fn contiguous_f32(x: &FlexTensor) -> &[f32] {
    x.as_slice::<f32>()
        .unwrap_or_else(|| panic!("conv2d: expected contiguous f32 data, got {x:?}"))
}

/// The bias gradient: the output gradient summed over examples and pixels.
fn bias_grad(grad: &FlexTensor, geometry: Geometry) -> FlexTensor {
    let [channels_out, ..] = geometry.weight;
    let pixels = geometry.pixels();
    let mut sums = vec![0.0f32; channels_out];
    if pixels > 0 {
        for example in contiguous_f32(grad).chunks_exact(channels_out * pixels) {
            for (sum, plane) in sums.iter_mut().zip(example.chunks_exact(pixels)) {
                *sum += lane_sum(plane);
            }
        }
    }
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

/// The weight gradient: each example's output gradient `[out, pixels]` times
/// its patches transposed `[pixels, taps]`, summed over examples.
fn weight_grad(grad_rows: &FlexTensor, patches: FlexTensor, geometry: Geometry) -> FlexTensor {
    let [channels_out, ..] = geometry.weight;
    let taps = geometry.taps();
    let per_example = Flex::float_matmul(grad_rows.clone(), patches.transpose(1, 2));
    let per_example = per_example.to_contiguous();
    let mut sum = vec![0.0f32; channels_out * taps];
    for example in contiguous_f32(&per_example).chunks_exact(channels_out * taps) {
        for (total, &value) in sum.iter_mut().zip(example) {
            *total += value;
        }
    }
    FlexTensor::from_data(TensorData::new(sum, geometry.weight))
}

/// The input gradient: the weight transposed `[taps, out]` times each
/// example's output gradient, folded back onto the input positions.
fn input_grad(grad_rows: FlexTensor, weight: &FlexTensor, geometry: Geometry) -> FlexTensor {
    let [channels_out, ..] = geometry.weight;
    let weight = weight
        .to_contiguous()
        .reshape(Shape::new([1, channels_out, geometry.taps()]))
        .transpose(1, 2);
    let patch_grads = Flex::float_matmul(weight, grad_rows).to_contiguous();
    let values = fold(contiguous_f32(&patch_grads), geometry);
    FlexTensor::from_data(TensorData::new(values, geometry.input))
}

/// For each patch row `(c, dy, dx)` and output row `y`: the output columns
/// whose input lies inside the input, and the input row and first column.
/// Calls `copy(row, y, source_y, (x_from, x_to), source_x)`.
fn for_each_segment(
    geometry: Geometry,
    mut copy: impl FnMut(usize, usize, usize, (usize, usize), usize),
) {
    let [_, channels_in, height, width] = geometry.input;
    let [_, _, kh, kw] = geometry.weight;
    let [top, left] = geometry.padding;
    let [out_h, out_w] = geometry.output;
    for c in 0..channels_in {
        for dy in 0..kh {
            for dx in 0..kw {
                let row = (c * kh + dy) * kw + dx;
                let x_from = left.saturating_sub(dx);
                let x_to = (width + left).saturating_sub(dx).min(out_w);
                if x_from >= x_to {
                    continue;
                }
                for y in 0..out_h {
                    let Some(source_y) = (y + dy).checked_sub(top).filter(|&s| s < height) else {
                        continue;
                    };
                    copy(
                        row,
                        y,
                        c * height + source_y,
                        (x_from, x_to),
                        x_from + dx - left,
                    );
                }
            }
        }
    }
}

/// The input's patches `[batch, taps, pixels]`: row `(c, dy, dx)` of an example
/// holds, for each output pixel `(y, x)`, the input at
/// `(c, y + dy - top, x + dx - left)`, zero outside the input.
fn patches(x: &FlexTensor, geometry: Geometry) -> FlexTensor {
    let x = x.to_contiguous();
    let [batch, channels_in, height, width] = geometry.input;
    let [_, out_w] = geometry.output;
    let (pixels, taps) = (geometry.pixels(), geometry.taps());
    let example_len = channels_in * height * width;
    let mut patches = vec![0.0f32; batch * taps * pixels];
    if pixels > 0 && example_len > 0 {
        let examples = contiguous_f32(&x).chunks_exact(example_len);
        for (example, target) in examples.zip(patches.chunks_exact_mut(taps * pixels)) {
            for_each_segment(geometry, |row, y, source_row, (x_from, x_to), source_x| {
                let start = row * pixels + y * out_w;
                let source = source_row * width + source_x;
                target[start + x_from..start + x_to]
                    .copy_from_slice(&example[source..source + (x_to - x_from)]);
            });
        }
    }
    FlexTensor::from_data(TensorData::new(patches, [batch, taps, pixels]))
}

/// The transpose of [`patches`]: each patch row's values added back onto the
/// input positions they were copied from.
fn fold(patch_grads: &[f32], geometry: Geometry) -> Vec<f32> {
    let [batch, channels_in, height, width] = geometry.input;
    let [_, out_w] = geometry.output;
    let (pixels, taps) = (geometry.pixels(), geometry.taps());
    let example_len = channels_in * height * width;
    let mut input = vec![0.0f32; batch * example_len];
    if pixels > 0 && example_len > 0 {
        let examples = patch_grads.chunks_exact(taps * pixels);
        for (source, example) in examples.zip(input.chunks_exact_mut(example_len)) {
            for_each_segment(geometry, |row, y, target_row, (x_from, x_to), target_x| {
                let start = row * pixels + y * out_w;
                let target = target_row * width + target_x;
                let target = &mut example[target..target + (x_to - x_from)];
                for (value, &g) in target.iter_mut().zip(&source[start + x_from..start + x_to]) {
                    *value += g;
                }
            });
        }
    }
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
}
