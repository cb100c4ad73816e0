"""The whole two-column AlexNet, forward and backward, against a float64 composition of
pyconvnet.reference ops; its construction, weight export/import and bad configurations."""
import numpy as np
import pytest

import pyconvnet
from pyconvnet import layers as L
from pyconvnet import reference as ref
from pyconvnet.models import alexnet, loss_and_grad
from helpers import assert_close


def reference_loss_and_grads(model, x, labels, masks):
    """Forward and backward of `model` in float64 with the reference ops; dropout uses `masks`
    (layer name -> the engine's mask) so both see the same units dropped."""
    params = model.state_dict()
    acts, a = [], x.astype(np.float64)
    for layer in model.layers:
        acts.append(a)
        if isinstance(layer, L.Conv2d):
            a = ref.conv2d(a, params[f"{layer.name}.weight"], params[f"{layer.name}.bias"], layer.stride, layer.padding, layer.groups)
        elif isinstance(layer, L.Linear):
            a = ref.linear(a, params[f"{layer.name}.weight"], params[f"{layer.name}.bias"])
        elif isinstance(layer, L.ReLU):
            a = ref.relu(a)
        elif isinstance(layer, L.LRN):
            a = ref.lrn(a, **layer.kw)
        elif isinstance(layer, L.MaxPool2d):
            a = ref.max_pool2d(a, layer.kernel, layer.stride)
        elif isinstance(layer, L.Flatten):
            a = a.reshape(a.shape[0], -1)
        elif isinstance(layer, L.Dropout):
            a = ref.dropout(a, masks[layer.name], layer.p)
    loss, d = ref.cross_entropy(a, labels)
    grads = {}
    for layer, a_in in zip(reversed(model.layers), reversed(acts)):
        if isinstance(layer, L.Conv2d):
            d, grads[f"{layer.name}.weight"], grads[f"{layer.name}.bias"] = ref.conv2d_backward(
                d, a_in, params[f"{layer.name}.weight"], layer.stride, layer.padding, layer.groups)
        elif isinstance(layer, L.Linear):
            d, grads[f"{layer.name}.weight"], grads[f"{layer.name}.bias"] = ref.linear_backward(d, a_in, params[f"{layer.name}.weight"])
        elif isinstance(layer, L.ReLU):
            d = ref.relu_backward(d, ref.relu(a_in))
        elif isinstance(layer, L.LRN):
            d = ref.lrn_backward(d, a_in, **layer.kw)
        elif isinstance(layer, L.MaxPool2d):
            d = ref.max_pool2d_backward(d, a_in, layer.kernel, layer.stride)
        elif isinstance(layer, L.Flatten):
            d = d.reshape(a_in.shape)
        elif isinstance(layer, L.Dropout):
            d = ref.dropout_backward(d, masks[layer.name], layer.p)
    return loss, a, grads


@pytest.mark.parametrize("init", ["paper", "he"])
def test_alexnet_forward_backward_matches_reference(device, rng, init):
    model = alexnet(num_classes=7, input_size=67, width=0.125, seed=int(rng.integers(1 << 30)), init=init).to(device)
    x = (rng.standard_normal((3, 3, 67, 67)) * 50).astype(np.float32)
    labels = rng.integers(0, 7, 3).astype(np.int32)
    model.set_dropout_seed(int(rng.integers(1 << 62)))
    logits = model.forward(pyconvnet.tensor(x, device), train=True)
    loss, dlogits = pyconvnet.ops.cross_entropy(logits, pyconvnet.tensor(labels, device))
    masks = {l.name: l.mask.numpy() for l in model.layers if isinstance(l, L.Dropout)}
    model.backward(dlogits)
    ref_loss, ref_logits, ref_grads = reference_loss_and_grads(model, x, labels, masks)
    # A deep float32 composition: errors grow layer by layer, so compare relative to each
    # tensor's scale (atol = 1e-3 of its largest magnitude) as well as elementwise.
    assert_close(logits, ref_logits, rtol=1e-3, atol=1e-3 * np.abs(ref_logits).max(), what="logits")
    assert abs(loss - ref_loss) <= 1e-4 * max(1.0, abs(ref_loss)), (loss, ref_loss)
    for key, layer, p in model.parameters():
        g = ref_grads[key]
        assert_close(layer.grads[p], g, rtol=1e-2, atol=2e-3 * np.abs(g).max() + 1e-12, what=f"gradient of {key}")


def test_fused_relu_gives_the_bits_of_the_separate_layers(device, rng):
    """conv1-5, fc6 and fc7 apply the ReLU that follows them in their forward (the bias and ReLU
    in the GEMM's epilogue); the network's logits, loss and every gradient are bit-identical to
    running each ReLU as a layer of its own."""
    fused = [l.name for l in alexnet(num_classes=5, input_size=64, width=0.125).layers if getattr(l, "relu", False)]
    assert fused == ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7"]
    x = pyconvnet.tensor((rng.standard_normal((3, 3, 64, 64)) * 50).astype(np.float32), device)
    labels = pyconvnet.tensor(rng.integers(0, 5, 3).astype(np.int32), device)
    runs = []
    for fuse in (True, False):
        model = alexnet(num_classes=5, input_size=64, width=0.125, seed=5, init="he").to(device)
        if not fuse:
            for layer in model.layers:
                layer.relu = layer.fused = False
        model.set_dropout_seed(77)
        loss, logits = loss_and_grad(model, x, labels)
        runs.append((loss, logits.numpy(), {k: layer.grads[p].numpy() for k, layer, p in model.parameters()}))
    (loss_f, logits_f, grads_f), (loss_u, logits_u, grads_u) = runs
    assert loss_f == loss_u and np.array_equal(logits_f, logits_u)
    for key in grads_f:
        assert np.array_equal(grads_f[key], grads_u[key]), key


def test_alexnet_shapes_and_parameter_count():
    model = alexnet()
    assert model.shapes[0] == (96, 55, 55)
    assert model.shapes[3] == (96, 27, 27)
    assert [s for l, s in zip(model.layers, model.shapes) if l.name == "pool5"] == [(256, 6, 6)]
    assert model.shapes[-1] == (1000,)
    assert 60_000_000 < model.num_parameters() < 61_500_000  # "about 60M parameters"
    groups = {l.name: l.groups for l in model.layers if isinstance(l, L.Conv2d)}
    assert groups == {"conv1": 1, "conv2": 2, "conv3": 1, "conv4": 2, "conv5": 2}
    assert all(l.kw["groups"] == 2 for l in model.layers if isinstance(l, L.LRN))


def test_alexnet_paper_initialisation():
    state = alexnet(num_classes=10, input_size=99, width=0.25).state_dict()
    for name in ("conv2", "conv4", "conv5", "fc6", "fc7"):
        assert np.all(state[f"{name}.bias"] == 1.0)
    for name in ("conv1", "conv3", "fc8"):
        assert np.all(state[f"{name}.bias"] == 0.0)
    w = state["fc6.weight"]
    assert abs(w.std() - 0.01) < 0.001 and abs(w.mean()) < 0.001


def test_state_dict_roundtrip_and_checks(rng):
    a, b = alexnet(num_classes=5, input_size=64, width=0.125, seed=1), alexnet(num_classes=5, input_size=64, width=0.125, seed=2)
    b.load_state_dict(a.state_dict())
    for k, v in a.state_dict().items():
        assert np.array_equal(v, b.state_dict()[k])
    bad = a.state_dict()
    bad["fc8.weight"] = bad["fc8.weight"][:, :3]
    with pytest.raises(ValueError, match=r"'fc8.weight' must have shape \(5, \d+\); got \(5, 3\)"):
        b.load_state_dict(bad)
    with pytest.raises(ValueError, match=r"missing keys \['conv1.bias'\]"):
        b.load_state_dict({k: v for k, v in a.state_dict().items() if k != "conv1.bias"})


def test_bad_configurations_are_clear_errors():
    with pytest.raises(ValueError, match="input_size=40 is too small"):
        alexnet(input_size=40)
    with pytest.raises(ValueError, match="num_classes must be a positive int"):
        alexnet(num_classes=0)
    model = alexnet(num_classes=3, input_size=64, width=0.125)
    with pytest.raises(ValueError, match=r"input must have shape \(N, 3, 64, 64\); got \(1, 3, 60, 60\)"):
        model.forward(pyconvnet.zeros((1, 3, 60, 60)))


@pytest.mark.cuda
@pytest.mark.skipif(not pyconvnet.cuda.is_available(), reason="needs CUDA: compares a training step on CPU and CUDA")
def test_training_step_agrees_on_cpu_and_cuda(rng):
    """One SGD step (forward, loss, backward, update) from the same weights, input and dropout
    seed on both devices gives the same loss and weights within float32 tolerance."""
    x = (rng.standard_normal((4, 3, 64, 64)) * 50).astype(np.float32)
    labels = rng.integers(0, 5, 4).astype(np.int32)
    results = {}
    for device in ("cpu", "cuda"):
        model = alexnet(num_classes=5, input_size=64, width=0.125, seed=11, init="he").to(device)
        model.set_dropout_seed(1234)
        loss, _ = loss_and_grad(model, pyconvnet.tensor(x, device), pyconvnet.tensor(labels, device))
        for key, layer, p in model.parameters():
            v = pyconvnet.zeros(layer.params[p].shape, device=device)
            pyconvnet.ops.sgd_update(layer.params[p], layer.grads[p], v, 0.01 * layer.lr_mult, 0.9, 0.0005)
        results[device] = (loss, model.state_dict())
    (loss_c, w_c), (loss_g, w_g) = results["cpu"], results["cuda"]
    assert abs(loss_c - loss_g) <= 1e-4 * max(1.0, abs(loss_c))
    for key in w_c:
        assert_close(w_g[key], w_c[key], rtol=1e-4, atol=1e-5 * max(1e-3, np.abs(w_c[key]).max()), what=key)


@pytest.mark.cuda
@pytest.mark.skipif(not pyconvnet.cuda.is_available(), reason="needs CUDA: the TF32 kernels run on CUDA only")
def test_tf32_precision_runs_every_gemm_layer_on_its_tf32_version(rng):
    """set_versions (what --precision tf32 does) reaches every conv and linear layer, and the TF32
    network's logits stay close to the FP32 network's (a loose check of the whole composition:
    the per-op TF32 bounds are tests/test_conv2d.py's and test_linear.py's)."""
    from pyconvnet.console import resolve_precision
    versions = resolve_precision("tf32", "cuda")
    x = pyconvnet.tensor((rng.standard_normal((2, 3, 64, 64)) * 50).astype(np.float32), "cuda")
    logits = {}
    for precision in ("fp32", "tf32"):
        model = alexnet(num_classes=5, input_size=64, width=0.125, seed=3, init="he").to("cuda")
        model.set_versions(resolve_precision(precision, "cuda"))
        gemm = [layer for layer in model.layers if layer.op]
        assert len(gemm) == 8 and all(layer.version == (versions[layer.op] if precision == "tf32" else 0) for layer in gemm)
        logits[precision] = model.forward(x, train=False).numpy()
    scale = np.abs(logits["fp32"]).max()
    assert np.abs(logits["tf32"] - logits["fp32"]).max() <= 2e-2 * scale
