//! Max pooling for the CNN bodies: windows of `kernel` with a stride equal to the
//! kernel, no padding, the output size rounded down: what burn's `MaxPool2d`
//! computes with those settings, value for value and gradient for gradient
//! (ties go to the first element of a window in row-major order, a NaN wins as
//! in PyTorch), but as tight loops over contiguous NCHW `f32` memory.
//!
//! Why: the `flex` backend's pooling is one generic 3-D kernel with padding,
//! dilation and ceil mode, which recomputes each window's valid range with
//! integer divisions for every output; it took about a quarter of a small CNN's
//! training step (`perf` of the `train_speed` example). Here the forward records
//! each output's argmax as its position in the window (one byte), and the
//! backward writes each output's gradient to that position. The 2×2 and 1×2
//! windows of `net.rs` have unrolled loops over pairs of columns, whose
//! comparisons are selects rather than branches (random data mispredicted
//! branches half the time); other windows take a general loop.
//!
//! The op is plugged in below burn's tensor API: [`max_pool2d`] takes the
//! backend primitive out of the tensor (`Tensor::try_into_primitive`, burn's
//! `extension` feature), runs the forward on the `flex` backend and, on an
//! autodiff device, registers [`FastMaxPool`] as the node's backward step, the
//! way burn-autodiff registers its own operations. Any other backend, dtype or
//! window (more than 256 positions) goes to burn's `MaxPool2d`.

use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::{
    BalancedCheckpointing, CheckpointStrategy, NoCheckpointing,
};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Flex};
use burn::nn::pool::MaxPool2dConfig;
use burn::tensor::{DType, Tensor, TensorData};

/// Max pooling of `[batch, channels, height, width]` with windows of `kernel`
/// and a stride equal to `kernel` (no padding, output size rounded down).
pub(crate) fn max_pool2d(x: Tensor<4>, kernel: [usize; 2]) -> Tensor<4> {
    let supported =
        x.dtype() == DType::F32 && kernel[0] >= 1 && kernel[1] >= 1 && kernel[0] * kernel[1] <= 256;
    // A failed conversion consumes its input, hence the (reference-counted) clones.
    macro_rules! route {
        ($backend:ty, $run:expr) => {
            if let Ok(x) = x.clone().try_into_primitive::<$backend>() {
                return Tensor::from_primitive::<$backend>($run(x, kernel));
            }
        };
    }
    if supported {
        route!(Autodiff<Flex>, tracked::<NoCheckpointing>);
        route!(Autodiff<Flex, BalancedCheckpointing>, tracked::<BalancedCheckpointing>);
        route!(Flex, |x, kernel| pool_forward(&x, kernel).0);
    }
    MaxPool2dConfig::new(kernel)
        .with_strides(kernel)
        .init()
        .forward(x)
}

/// The forward on an autodiff tensor, registering [`FastMaxPool`] when the
/// input is tracked.
fn tracked<C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<Flex, C>>,
    kernel: [usize; 2],
) -> FloatTensor<Autodiff<Flex, C>> {
    match <FastMaxPool as Backward<Flex, 1>>::prepare::<C>(FastMaxPool, [x.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let (output, indices) = pool_forward(x.primitive(), kernel);
            let state = PoolState {
                input: dims(x.primitive()),
                kernel,
                indices: indices.into(),
            };
            prep.finish(state, output)
        }
        OpsKind::UnTracked(prep) => prep.finish(pool_forward(x.primitive(), kernel).0),
    }
}

/// The backward step of [`max_pool2d`].
#[derive(Debug)]
pub(crate) struct FastMaxPool;

/// What the backward needs: the input's dimensions, the window and each
/// output's argmax as its position in the window (`row * kernel_w + column`).
#[derive(Clone)]
pub(crate) struct PoolState {
    input: [usize; 4],
    kernel: [usize; 2],
    indices: Arc<[u8]>,
}

impl std::fmt::Debug for PoolState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolState")
            .field("input", &self.input)
            .field("kernel", &self.kernel)
            .field("indices", &self.indices.len())
            .finish()
    }
}

impl Backward<Flex, 1> for FastMaxPool {
    type State = PoolState;

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [parent] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        if let Some(parent) = parent {
            let state = ops.state;
            let grad = grad.to_contiguous();
            let output = scatter(contiguous_f32(&grad), &state);
            grads.register::<Flex>(parent.id, flex_tensor(output, state.input));
        }
    }
}

fn dims(x: &FlexTensor) -> [usize; 4] {
    let shape = x.layout().shape();
    [shape[0], shape[1], shape[2], shape[3]]
}

fn contiguous_f32(x: &FlexTensor) -> &[f32] {
    x.as_slice::<f32>()
        .unwrap_or_else(|| panic!("max_pool2d: expected contiguous f32 data, got {x:?}"))
}

fn flex_tensor(values: Vec<f32>, dims: [usize; 4]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, dims))
}

/// The pooled tensor and each output's argmax position in its window.
fn pool_forward(x: &FlexTensor, kernel: [usize; 2]) -> (FlexTensor, Vec<u8>) {
    let input = dims(x);
    let x = x.to_contiguous();
    let x = contiguous_f32(&x);
    let (values, indices) = match kernel {
        [2, 2] => pool_pairs::<2>(x, input),
        [1, 2] => pool_pairs::<1>(x, input),
        _ => pool_windows(x, input, kernel),
    };
    let [batch, channels, height, width] = input;
    let out = [batch, channels, height / kernel[0], width / kernel[1]];
    (flex_tensor(values, out), indices)
}

/// Takes `candidate` (at window `position`) as the window's maximum when it is
/// greater than `best` or NaN. Selects rather than branches: which element
/// wins depends on the data, and branches on it mispredicted about half the
/// time, which made the loop several times slower on random inputs (plain
/// `if`s and even bit masks were compiled to branches; `select_unpredictable`
/// asks for conditional moves).
#[inline(always)]
fn take(best: &mut f32, at: &mut u32, candidate: f32, position: u32) {
    let wins = (candidate > *best) | candidate.is_nan();
    *best = std::hint::select_unpredictable(wins, candidate, *best);
    *at = std::hint::select_unpredictable(wins, position, *at);
}

/// The pooled values and window positions of `x` (`input` dims) under windows of
/// `kernel`: `row` fills one output row's values and positions from the input
/// rows it pools (`kernel[0]` rows of the input's width).
fn pool_rows(
    x: &[f32],
    input: [usize; 4],
    kernel: [usize; 2],
    mut row: impl FnMut(&[f32], &mut [f32], &mut [u8]),
) -> (Vec<f32>, Vec<u8>) {
    let [batch, channels, height, width] = input;
    let (oh, ow) = (height / kernel[0], width / kernel[1]);
    let n = batch * channels * oh * ow;
    let mut values = vec![0.0f32; n];
    let mut indices = vec![0u8; n];
    if n == 0 {
        return (values, indices);
    }
    let planes = x
        .chunks_exact(height * width)
        .zip(values.chunks_exact_mut(oh * ow))
        .zip(indices.chunks_exact_mut(oh * ow));
    for ((plane, values), indices) in planes {
        let outputs = values
            .chunks_exact_mut(ow)
            .zip(indices.chunks_exact_mut(ow));
        for (rows, (values, indices)) in plane.chunks_exact(kernel[0] * width).zip(outputs) {
            row(rows, values, indices);
        }
    }
    (values, indices)
}

/// `ROWS`×2 windows (the CNN bodies' pools): the general loop with the window
/// unrolled and each row's windows walked as pairs, so that the compiler needs
/// no bounds checks and vectorises across windows.
fn pool_pairs<const ROWS: usize>(x: &[f32], input: [usize; 4]) -> (Vec<f32>, Vec<u8>) {
    let width = input[3];
    // One output row's positions, narrowed to bytes after the row: mixing
    // `u8` stores into the `f32` loop kept it from vectorising.
    let mut row_at = vec![0u32; width / 2];
    pool_rows(x, input, [ROWS, 2], |rows, values, indices| {
        let (top, rest) = rows.split_at(width);
        let bottom = if ROWS == 2 { rest } else { top };
        let windows = values
            .iter_mut()
            .zip(row_at.iter_mut())
            .zip(top.chunks_exact(2))
            .zip(bottom.chunks_exact(2));
        for (((value, at), top), bottom) in windows {
            let mut best = top[0];
            let mut position = 0;
            take(&mut best, &mut position, top[1], 1);
            if ROWS == 2 {
                take(&mut best, &mut position, bottom[0], 2);
                take(&mut best, &mut position, bottom[1], 3);
            }
            *value = best;
            *at = position;
        }
        for (index, &at) in indices.iter_mut().zip(&row_at) {
            *index = at as u8;
        }
    })
}

/// Any window of at most 256 positions (checked by `max_pool2d`).
fn pool_windows(x: &[f32], input: [usize; 4], kernel: [usize; 2]) -> (Vec<f32>, Vec<u8>) {
    let width = input[3];
    let [kh, kw] = kernel;
    pool_rows(x, input, kernel, |rows, values, indices| {
        for (ox, (value, index)) in values.iter_mut().zip(indices.iter_mut()).enumerate() {
            let mut best = rows[ox * kw];
            let mut at = 0;
            for dy in 0..kh {
                let start = dy * width + ox * kw;
                for (dx, &candidate) in rows[start..start + kw].iter().enumerate() {
                    take(&mut best, &mut at, candidate, (dy * kw + dx) as u32);
                }
            }
            *value = best;
            *index = at as u8;
        }
    })
}

/// The input gradient: each output's gradient at its argmax, zero elsewhere
/// (plus zero, as burn's backward adds it to zeros: -0.0 becomes 0.0).
fn scatter(grad: &[f32], state: &PoolState) -> Vec<f32> {
    match state.kernel {
        [2, 2] => scatter_pairs::<2>(grad, state),
        [1, 2] => scatter_pairs::<1>(grad, state),
        _ => scatter_windows(grad, state),
    }
}

/// The input gradient of `state`'s pooling, zero to start: `row` writes one
/// output row's gradients (with their window positions) into the input rows
/// its windows cover.
fn scatter_rows(
    grad: &[f32],
    state: &PoolState,
    mut row: impl FnMut(&mut [f32], &[f32], &[u8]),
) -> Vec<f32> {
    let [batch, channels, height, width] = state.input;
    let [kh, kw] = state.kernel;
    let (oh, ow) = (height / kh, width / kw);
    let mut input = vec![0.0f32; batch * channels * height * width];
    if grad.is_empty() {
        return input;
    }
    let planes = input
        .chunks_exact_mut(height * width)
        .zip(grad.chunks_exact(oh * ow))
        .zip(state.indices.chunks_exact(oh * ow));
    for ((plane, grad), indices) in planes {
        let outputs = grad.chunks_exact(ow).zip(indices.chunks_exact(ow));
        for (rows, (grad, indices)) in plane.chunks_exact_mut(kh * width).zip(outputs) {
            row(rows, grad, indices);
        }
    }
    input
}

/// [`scatter`] for `ROWS`×2 windows: every window written whole, without branches.
fn scatter_pairs<const ROWS: usize>(grad: &[f32], state: &PoolState) -> Vec<f32> {
    let width = state.input[3];
    // `grad` where the window's maximum is at `position`, else 0.0.
    let at = |g: f32, index: u8, position: u8| {
        f32::from_bits((g + 0.0).to_bits() & u32::from(index == position).wrapping_neg())
    };
    scatter_rows(grad, state, |rows, grad, indices| {
        let (top, bottom) = rows.split_at_mut(width);
        for ((top, &g), &index) in top.chunks_exact_mut(2).zip(grad).zip(indices) {
            top[0] = at(g, index, 0);
            top[1] = at(g, index, 1);
        }
        if ROWS == 2 {
            for ((bottom, &g), &index) in bottom.chunks_exact_mut(2).zip(grad).zip(indices) {
                bottom[0] = at(g, index, 2);
                bottom[1] = at(g, index, 3);
            }
        }
    })
}

/// [`scatter`] for any window.
fn scatter_windows(grad: &[f32], state: &PoolState) -> Vec<f32> {
    let width = state.input[3];
    let [kh, kw] = state.kernel;
    // Window position -> offset from the window's first element.
    let offsets: Vec<usize> = (0..kh * kw).map(|p| p / kw * width + p % kw).collect();
    scatter_rows(grad, state, |rows, grad, indices| {
        for (ox, (&g, &index)) in grad.iter().zip(indices).enumerate() {
            rows[ox * kw + offsets[usize::from(index)]] += g;
        }
    })
}

#[cfg(test)]
mod tests {
    use burn::nn::pool::MaxPool2dConfig;
    use burn::tensor::{Device, Tensor, TensorData};

    use super::max_pool2d;

    /// Values from a fixed pseudo-random sequence; `levels` distinct values
    /// (few levels make ties), with NaNs at every `nan_every`-th position.
    fn values(n: usize, levels: u64, nan_every: Option<usize>, seed: u64) -> Vec<f32> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|i| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                match nan_every {
                    Some(k) if i % k == k - 1 => f32::NAN,
                    _ => (state % levels) as f32 - (levels / 2) as f32,
                }
            })
            .collect()
    }

    fn burn_pool(x: Tensor<4>, kernel: [usize; 2]) -> Tensor<4> {
        MaxPool2dConfig::new(kernel)
            .with_strides(kernel)
            .init()
            .forward(x)
    }

    fn bits(t: Tensor<4>) -> (Vec<usize>, Vec<u32>) {
        let dims = t.dims().to_vec();
        let data = t.into_data().try_to_vec::<f32>().expect("f32 data");
        (dims, data.iter().map(|v| v.to_bits()).collect())
    }

    /// Forward values and input gradients of [`max_pool2d`] and of burn's
    /// `MaxPool2d` on the same input, bit for bit, on `device`.
    fn check_on(device: &Device, shape: [usize; 4], kernel: [usize; 2], levels: u64, nans: bool) {
        let n = shape.iter().product();
        let nan_every = nans.then_some(7);
        let input = TensorData::new(values(n, levels, nan_every, n as u64), shape);
        let [b, c, h, w] = shape;
        let out_n = b * c * (h / kernel[0]) * (w / kernel[1]);
        let out_shape = [b, c, h / kernel[0], w / kernel[1]];
        // A distinct weight per output, so that a gradient sent to the wrong
        // input shows.
        let weights = TensorData::new(values(out_n, 1000, None, 7), out_shape);
        let run = |ours: bool| {
            let mut x = Tensor::<4>::from_data(input.clone(), device);
            if device.is_autodiff() {
                x = x.require_grad();
            }
            let y = if ours {
                max_pool2d(x.clone(), kernel)
            } else {
                burn_pool(x.clone(), kernel)
            };
            let forward = bits(y.clone());
            if !device.is_autodiff() {
                return (forward, (Vec::new(), Vec::new()));
            }
            let weights = Tensor::<4>::from_data(weights.clone(), device);
            let grads = (y * weights).sum().backward();
            let grad = bits(x.grad(&grads).expect("a gradient for the input"));
            (forward, grad)
        };
        let (ours, theirs) = (run(true), run(false));
        assert_eq!(ours.0, theirs.0, "forward of {shape:?} with {kernel:?}");
        assert_eq!(ours.1, theirs.1, "gradient of {shape:?} with {kernel:?}");
    }

    fn check(shape: [usize; 4], kernel: [usize; 2], levels: u64, nans: bool) {
        check_on(&Device::flex().autodiff(), shape, kernel, levels, nans);
        check_on(
            &Device::flex().autodiff().gradient_checkpointing(),
            shape,
            kernel,
            levels,
            nans,
        );
        check_on(&Device::flex(), shape, kernel, levels, nans);
    }

    #[test]
    fn max_pool_matches_burn_on_even_maps() {
        check([3, 4, 8, 12], [2, 2], 1 << 20, false);
        check([64, 8, 28, 28], [2, 2], 1 << 20, false);
    }

    #[test]
    fn max_pool_matches_burn_on_ties() {
        check([2, 3, 8, 8], [2, 2], 2, false);
        check([2, 3, 9, 9], [3, 3], 3, false);
    }

    #[test]
    fn max_pool_matches_burn_on_odd_maps() {
        check([2, 3, 7, 9], [2, 2], 5, false);
        check([1, 2, 11, 10], [3, 4], 1 << 20, false);
        check([2, 2, 1, 1], [2, 2], 5, false);
    }

    #[test]
    fn max_pool_matches_burn_on_one_dimensional_maps() {
        check([4, 5, 1, 17], [1, 2], 4, false);
        check([4, 5, 3, 17], [1, 3], 1 << 20, false);
    }

    #[test]
    fn max_pool_matches_burn_with_nans() {
        check([2, 3, 8, 10], [2, 2], 3, true);
    }

    #[test]
    fn max_pool_falls_back_to_burn_beyond_256_window_positions() {
        check([1, 2, 17, 17], [17, 16], 1 << 20, false);
    }
}
