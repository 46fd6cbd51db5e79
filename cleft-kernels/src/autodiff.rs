//! Autodiff for the extension: each kernel is one graph node whose backward calls the inner
//! backend's backward kernel (the macro generates no backward pass itself).

use core::fmt;

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Shape, TensorMetadata};

use super::flex::{CleftKernels, attention_scores};

/// `(x, grad) → input gradient` of an element-wise kernel.
type BackwardFn<B> = fn(FloatTensor<B>, FloatTensor<B>) -> FloatTensor<B>;

/// The backward step of an element-wise kernel `y = f(x)`; its state is the input's node.
struct ElementWise<B: Backend> {
    backward: BackwardFn<B>,
}

impl<B: Backend> fmt::Debug for ElementWise<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ElementWise")
    }
}

impl<B: Backend> Backward<B, 1> for ElementWise<B> {
    type State = NodeId;

    fn backward(self, ops: Ops<NodeId, 1>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let input = checkpointer.retrieve_node_output::<FloatTensor<B>>(ops.state);
        unary::<B, _>(ops.parents, ops.node, grads, |grad| {
            (self.backward)(input, grad)
        });
    }
}

/// Records `forward(x)` as one node (the input kept for the backward, as burn's own GELU does).
fn element_wise<B: Backend, C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<B, C>>,
    forward: fn(FloatTensor<B>) -> FloatTensor<B>,
    backward: BackwardFn<B>,
) -> FloatTensor<Autodiff<B, C>> {
    match (ElementWise { backward })
        .prepare::<C>([x.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(mut prep) => {
            let state = prep.checkpoint(&x);
            prep.finish(state, forward(x.primitive().clone()))
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(x.into_primitive())),
    }
}

/// The backward step of [`CleftKernels::attention_unmasked`]: the probabilities are recomputed
/// from the kept `q`, `k` (one extra `q·kᵀ` product) instead of keeping `[B, H, Lq, Lk]` scores,
/// exponentials and probabilities per layer, as the composed ops would.
#[derive(Debug)]
struct Attention {
    scale: f32,
}

/// `(q, k, v)` nodes.
type AttentionState = (NodeId, NodeId, NodeId);

impl<B: Backend + CleftKernels> Backward<B, 3> for Attention {
    type State = AttentionState;

    fn backward(
        self,
        ops: Ops<AttentionState, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let (q_id, k_id, v_id) = ops.state;
        let q = checkpointer.retrieve_node_output::<FloatTensor<B>>(q_id);
        let k = checkpointer.retrieve_node_output::<FloatTensor<B>>(k_id);
        let v = checkpointer.retrieve_node_output::<FloatTensor<B>>(v_id);
        let grad = grads.consume::<B>(&ops.node);
        let [q_parent, k_parent, v_parent] = ops.parents;

        // P = softmax(q·kᵀ·scale); o = P·v.
        let p = B::softmax_last(attention_scores::<B>(q.clone(), k.clone(), self.scale));
        // dP = do·vᵀ, dS = scale·P·(dP − Σ P·dP).
        let dp = B::float_matmul(grad.clone(), B::float_swap_dims(v, 2, 3));
        if let Some(node) = v_parent {
            // dv = Pᵀ·do.
            let dv = B::float_matmul(B::float_swap_dims(p.clone(), 2, 3), grad);
            grads.register::<B>(node.id, dv);
        }
        let ds = B::softmax_last_backward(p, dp, self.scale);
        if let Some(node) = k_parent {
            // dk = dSᵀ·q.
            grads.register::<B>(
                node.id,
                B::float_matmul(B::float_swap_dims(ds.clone(), 2, 3), q),
            );
        }
        if let Some(node) = q_parent {
            // dq = dS·k.
            grads.register::<B>(node.id, B::float_matmul(ds, k));
        }
    }
}

/// The backward step of [`CleftKernels::layer_norm_last`]; it recomputes the row statistics
/// from the kept `x`.
#[derive(Debug)]
struct LayerNorm {
    epsilon: f64,
}

/// `(x, γ)` nodes.
type LayerNormState = (NodeId, NodeId);

impl<B: Backend + CleftKernels> Backward<B, 3> for LayerNorm {
    type State = LayerNormState;

    fn backward(
        self,
        ops: Ops<LayerNormState, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let (x_id, gamma_id) = ops.state;
        let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x_id);
        let gamma = checkpointer.retrieve_node_output::<FloatTensor<B>>(gamma_id);
        let dy = grads.consume::<B>(&ops.node);
        let [x_parent, gamma_parent, beta_parent] = ops.parents;
        let width = gamma.shape().num_elements();
        let rows = dy.shape().num_elements() / width;
        // Σ over every row of a `[…, D]` tensor → `[D]`.
        let sum_rows = |t: FloatTensor<B>| {
            let summed = B::float_sum_dim(B::float_reshape(t, Shape::new([rows, width])), 0);
            B::float_reshape(summed, Shape::new([width]))
        };
        if let Some(node) = beta_parent {
            grads.register::<B>(node.id, sum_rows(dy.clone()));
        }
        if let Some(node) = gamma_parent {
            let normalized = B::layer_norm_normalized(x.clone(), self.epsilon);
            grads.register::<B>(node.id, sum_rows(B::float_mul(dy.clone(), normalized)));
        }
        if let Some(node) = x_parent {
            grads.register::<B>(
                node.id,
                B::layer_norm_input_grad(x, gamma, dy, self.epsilon),
            );
        }
    }
}

impl<B: Backend + CleftKernels, C: CheckpointStrategy> CleftKernels for Autodiff<B, C> {
    fn layer_norm_last(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        match (LayerNorm { epsilon })
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let state = (prep.checkpoint(&x), prep.checkpoint(&gamma));
                let out = B::layer_norm_last(
                    x.primitive().clone(),
                    gamma.primitive().clone(),
                    beta.primitive().clone(),
                    epsilon,
                );
                prep.finish(state, out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::layer_norm_last(
                x.into_primitive(),
                gamma.into_primitive(),
                beta.into_primitive(),
                epsilon,
            )),
        }
    }

    fn attention_unmasked(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        scale: f32,
    ) -> FloatTensor<Self> {
        match (Attention { scale })
            .prepare::<C>([q.node(), k.node(), v.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let state = (
                    prep.checkpoint(&q),
                    prep.checkpoint(&k),
                    prep.checkpoint(&v),
                );
                let out = B::attention_unmasked(
                    q.primitive().clone(),
                    k.primitive().clone(),
                    v.primitive().clone(),
                    scale,
                );
                prep.finish(state, out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::attention_unmasked(
                q.into_primitive(),
                k.into_primitive(),
                v.into_primitive(),
                scale,
            )),
        }
    }

    fn gelu_erf(x: FloatTensor<Self>) -> FloatTensor<Self> {
        element_wise::<B, C>(x, B::gelu_erf, B::gelu_erf_backward)
    }

    fn gelu_tanh(x: FloatTensor<Self>) -> FloatTensor<Self> {
        element_wise::<B, C>(x, B::gelu_tanh, B::gelu_tanh_backward)
    }
}
