"""Validation at the served boundary, on real tritonservers: the networks answer a bad image with an
error response and the rest of the batch with outputs, Triton refuses wrong dims and dtypes before
any model runs, and a full queue sheds load at once with a retryable error (`ServerBusy`)."""

from __future__ import annotations

import shutil
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from facecodec.client.reconnect import _retryable
from facecodec.client.remote import ClientError, RemoteNetworks, ServerBusy
from facecodec.serving import repository
from facecodec.serving.server import TritonServer

from ..served import REPOSITORY, SETTINGS

pytestmark = pytest.mark.triton


def infer(url: str, name: str, image: np.ndarray, tensor: str = "image"):
    client = grpcclient.InferenceServerClient(url)
    try:
        data = grpcclient.InferInput(tensor, list(image.shape), "FP32" if image.dtype == np.float32 else "FP64")
        data.set_data_from_numpy(image)
        return client.infer(name, [data], client_timeout=240)
    finally:
        client.close()


def test_networks_refuse_non_finite_images_and_answer_the_rest_of_their_batch(triton):
    good = np.random.default_rng(0).random((1, 3, 256, 256), dtype=np.float32)
    bad = {"NaN": np.full_like(good, np.nan), "inf": np.where(good > 0.5, np.inf, good).astype(np.float32)}
    with ThreadPoolExecutor(4) as pool:  # in flight together: one dynamic batch where the timing allows
        futures = {k: pool.submit(infer, triton.grpc_url, "motion_encoder", v) for k, v in bad.items()}
        fine = [pool.submit(infer, triton.grpc_url, "motion_encoder", good) for _ in range(2)]
        for what, future in futures.items():
            with pytest.raises(InferenceServerException, match="values must be finite"):
                future.result()
        for future in fine:
            assert np.isfinite(future.result().as_numpy("rotation")).all()
    with pytest.raises(InferenceServerException, match="values must be finite"):
        infer(triton.grpc_url, "appearance_encoder", bad["inf"], tensor="source_image")


def test_triton_refuses_wrong_dims_and_dtypes_before_the_model(triton):
    with pytest.raises(InferenceServerException, match="unexpected shape"):
        infer(triton.grpc_url, "motion_encoder", np.zeros((1, 3, 512, 512), np.float32))  # any size but 256²
    with pytest.raises(InferenceServerException, match="unexpected shape"):
        infer(triton.grpc_url, "motion_encoder", np.zeros((1, 256, 256), np.float32))  # wrong rank
    with pytest.raises(InferenceServerException, match="data-type is .FP64., but model .motion_encoder. expects"):
        infer(triton.grpc_url, "motion_encoder", np.zeros((1, 3, 256, 256), np.float64))


def test_a_full_queue_sheds_load_at_once_with_a_retryable_error(onnx_dir, tmp_path):
    settings = SETTINGS.with_(max_queue=1, max_batch_size=1, queue_delay_us=0)
    repo = repository.stage(REPOSITORY, tmp_path / "repository", onnx_dir, settings)
    for other in ("decoder", "appearance_encoder", "warp_decoder"):  # motion_encoder alone starts sooner
        shutil.rmtree(repo / other)
    image = np.random.default_rng(0).random((1, 3, 256, 256), dtype=np.float32)
    with TritonServer(repo, models=["motion_encoder"], log_path=tmp_path / "log", startup_timeout=300) as server:
        RemoteNetworks(server.grpc_url, timeout=240)("motion_encoder", {"image": image})  # warm

        def one(_):
            networks = RemoteNetworks(server.grpc_url, timeout=240)
            start = time.monotonic()
            try:
                networks("motion_encoder", {"image": image})
                return "answered", time.monotonic() - start
            except ServerBusy as err:
                return err, time.monotonic() - start
            finally:
                networks.close()

        with ThreadPoolExecutor(16) as pool:
            outcomes = list(pool.map(one, range(32)))
        shed = [(e, s) for e, s in outcomes if isinstance(e, ClientError)]
        answered = [s for e, s in outcomes if e == "answered"]
        assert shed and answered, outcomes
        error, _ = shed[0]
        assert "busy" in str(error) and "Exceeds maximum queue size" in str(error) and _retryable(error)
        assert max(s for _, s in shed) < 5.0  # refused at once, not after a timeout
        # the server goes on serving
        after = RemoteNetworks(server.grpc_url, timeout=240)("motion_encoder", {"image": image})
        assert np.isfinite(after["rotation"]).all()
        print(f"\n{len(shed)} of 32 shed (slowest refusal {max(s for _, s in shed):.2f} s), {len(answered)} answered")
