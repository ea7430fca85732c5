"""gRPC access to the served models (tritonclient.grpc), no model logic.

- `RemoteNetworks`: the stateless networks (motion_encoder, appearance_encoder, warp_decoder) behind
  the same `Networks` interface as the in-process runtimes, so the codec (`facecodec.codec`) runs on it.
- `DecoderSession`: one call on the stateful `decoder` model over ONE bidirectional gRPC stream
  (sequence id = the call, START on the first request, END on the last).
"""

from __future__ import annotations

import collections
import logging
import secrets
import threading
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from .. import io_spec
from ..codec.session import TOKEN_PARAMETER, FrameRequest
from .tls import ClientTls

log = logging.getLogger(__name__)
DEFAULT_URL = "127.0.0.1:8001"
# Triton's sequence scheduler, for a request of a sequence it does not know (never started, ended, expired)
SEQUENCE_GONE = "must specify the START flag"


class ClientError(RuntimeError):
    """A request failed on the server (its message says why) or the server is unreachable."""


class ServerBusy(ClientError):
    """The model's queue is full: the server shed this request at once. Retry later, or skip the frame."""

    retryable = True


QUEUE_FULL = "Exceeds maximum queue size"  # Triton's refusal when a model's max_queue_size is reached


def grpc_client(url: str, *, verbose: bool = False, tls: ClientTls | None = None) -> grpcclient.InferenceServerClient:
    """A tritonclient gRPC client, over TLS when `tls` is given (a server started with --tls-cert)."""
    return grpcclient.InferenceServerClient(url, verbose=verbose, **(tls.grpc_options() if tls is not None else {}))


def _inputs(tensors: dict[str, np.ndarray]) -> list[grpcclient.InferInput]:
    out = []
    for name, array in tensors.items():
        tensor = grpcclient.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
        tensor.set_data_from_numpy(array)
        out.append(tensor)
    return out


@dataclass(frozen=True)
class ServedModel:
    """What the server serves, read from the decoder's config: preset and sizes."""

    preset: str
    image_size: int
    num_kp: int


class RemoteNetworks:
    """`Networks` callable over gRPC: name + feeds (io_spec names) → outputs."""

    def __init__(self, url: str = DEFAULT_URL, *, timeout: float | None = None, verbose: bool = False,
                 tls: ClientTls | None = None):
        self.client = grpc_client(url, verbose=verbose, tls=tls)
        self.url, self.timeout = url, timeout

    def __call__(self, name: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        spec = io_spec.NETWORKS[name]
        tensors = {n: np.ascontiguousarray(feeds[n], np.float32) for n in spec.input_names}
        outputs = [grpcclient.InferRequestedOutput(n) for n in spec.output_names]
        try:
            result = self.client.infer(name, _inputs(tensors), outputs=outputs, client_timeout=self.timeout)
        except InferenceServerException as err:
            if QUEUE_FULL in (err.message() or ""):
                raise ServerBusy(f"{name} at {self.url} is busy (its queue is full; retry later): "
                                 f"{err.message()}") from err
            raise ClientError(f"{name} at {self.url}: {err.message()}") from err
        return {n: result.as_numpy(n) for n in spec.output_names}

    def served_model(self) -> ServedModel:
        try:
            config = self.client.get_model_config(io_spec.DECODER.name, client_timeout=self.timeout).config
        except InferenceServerException as err:
            raise ClientError(f"no decoder model at {self.url}: {err.message()}") from err
        dims = {t.name: list(t.dims) for t in config.input}
        return ServedModel(config.parameters["preset"].string_value, dims["source_image"][-1], dims["expression"][0])

    def close(self) -> None:
        self.client.close()


class DecoderSession:
    """One call session on the `decoder` model, over its own gRPC stream.

    `send` returns a Future of the frame ((1, 3, S, S) float in [0, 1]); at most `window` requests
    are in flight. Responses of one sequence come back in request order, which is how they are
    matched (tritonclient reports a stream error without its request id).
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        session_id: int | None = None,
        timeout: float | None = 60.0,
        window: int = 8,
        verbose: bool = False,
        tls: ClientTls | None = None,
    ):
        self.session_id = session_id or secrets.randbits(62) + 1  # uint64 CORRID; 0 means "none"
        # bound to the session by START, sent with every request: the id alone (which the server
        # logs) does not let anyone else into the call
        self.token = secrets.token_urlsafe(24)
        self.url, self.timeout = url, timeout
        self.client = grpc_client(url, verbose=verbose, tls=tls)
        try:
            self.client.is_server_live(client_timeout=timeout)
        except InferenceServerException as err:
            raise ClientError(f"cannot reach Triton at {url}: {err.message()}") from err
        self._pending: collections.deque[Future] = collections.deque()
        self._lock = threading.Lock()
        self._window = threading.BoundedSemaphore(window)
        self._count = 0
        self.last_request_id = ""
        self._broken: str | None = None  # why the stream died, once it has
        self.started = self.ended = False
        self.client.start_stream(callback=self._on_response)

    def __enter__(self) -> "DecoderSession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def send(self, frame: FrameRequest, parameters: dict[str, int | str | bool] | None = None) -> Future:
        """Queue one request of this call (its session_id is replaced by the session's, its token is the
        session's `token`). `parameters`:
        Triton request parameters (e.g. `dropped`, the frames the receiver skipped since its last
        request, which the decoder counts in its metrics)."""
        if not self._window.acquire(timeout=self.timeout):
            raise ClientError(f"decoder session {self.session_id}: no response within {self.timeout} s")
        future: Future = Future()
        with self._lock:
            if self._broken:
                self._window.release()
                raise ClientError(self._broken)
            self._pending.append(future)
            self._count += 1
            request_id = f"{self.session_id}-{self._count}"  # unique per server: Triton's trace names it
            self.last_request_id = request_id
            try:
                self.client.async_stream_infer(
                    io_spec.DECODER.name,
                    _inputs(frame.to_tensors()),
                    outputs=[grpcclient.InferRequestedOutput(n) for n in io_spec.DECODER.output_names],
                    request_id=request_id,
                    sequence_id=self.session_id,
                    sequence_start=frame.start,
                    sequence_end=frame.end,
                    parameters={**(parameters or {}), TOKEN_PARAMETER: self.token},
                )
            except InferenceServerException as err:
                self._pending.pop()
                self._window.release()
                raise ClientError(self._broken or f"decoder session {self.session_id}: {err.message()}") from err
        self.started |= frame.start
        self.ended |= frame.end
        return future

    def _on_response(self, result=None, error=None) -> None:  # tritonclient calls it by keyword
        if error is not None and error.status() is not None:  # a gRPC status: the stream itself died
            self._fail_all(f"decoder session {self.session_id}: stream to {self.url} failed: {error.message()}")
            return
        with self._lock:
            future = self._pending.popleft() if self._pending else None
        if future is None:
            log.warning("decoder session %d: response without a request: %s", self.session_id, error)
            return
        self._window.release()
        if error is not None and self.started and SEQUENCE_GONE in error.message():
            # the scheduler no longer knows this started call (ended by an END that was not ours, or
            # expired): the session is over on this server, like a dead stream (ReconnectingSession
            # re-opens it)
            self._fail_all(f"decoder session {self.session_id}: the server ended this call's sequence: "
                           f"{error.message()}")
        if error is not None:  # this request's own error (scheduler or model), the stream goes on
            future.set_exception(ClientError(f"decoder session {self.session_id}: {error.message()}"))
        else:
            future.set_result(result.as_numpy(io_spec.OUTPUT_IMAGE.name))

    def _fail_all(self, reason: str) -> None:
        with self._lock:
            self._broken = reason
            pending, self._pending = list(self._pending), collections.deque()
        for future in pending:
            self._window.release()
            future.set_exception(ClientError(reason))

    @property
    def broken(self) -> bool:
        """True once the stream has failed (every later request fails too)."""
        return self._broken is not None

    def close(self) -> None:
        """Wait for outstanding frames, END the call if it was left open, close the stream."""
        try:
            if self.started and not self.ended and not self._broken:
                try:
                    self.send(FrameRequest(self.session_id, end=True)).result(self.timeout)
                except ClientError as err:
                    log.debug("closing session %d: %s", self.session_id, err)
            with self._lock:
                pending = list(self._pending)
            for future in pending:
                try:
                    future.result(self.timeout)
                except Exception:  # noqa: BLE001 - its owner saw or will see the error
                    pass
        finally:
            self.client.stop_stream()
            self.client.close()
