"""Who may talk to a real tritonserver: gRPC over TLS (one-way and mutual, certificates made here by
openssl, never committed) and Triton's restricted protocols (model control, shared memory, statistics,
trace and logging need the admin header; calls do not)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from facecodec.client import calls
from facecodec.client.remote import ClientError, DecoderSession, grpc_client
from facecodec.client.tls import ClientTls
from facecodec.serving import repository
from facecodec.serving.security import RESTRICTED, ServerTls, admin_headers, make_test_pki, new_admin_key
from facecodec.serving.server import TritonServer

from ..served import REPOSITORY, SETTINGS, assert_close_frames, local_decode

pytestmark = [pytest.mark.triton,
              pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI for test certificates")]


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_test_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory):
    """Another CA and its certificates: trusted by nobody here."""
    return make_test_pki(tmp_path_factory.mktemp("other-pki"))


@pytest.fixture(scope="module")
def admin_key() -> str:
    return new_admin_key()


@pytest.fixture(scope="module")
def mtls_server(onnx_dir, tmp_path_factory, pki, admin_key):
    """The served models behind mutual TLS and restricted protocols."""
    repo = repository.stage(REPOSITORY, tmp_path_factory.mktemp("tls-repository"), onnx_dir, SETTINGS)
    tls = ServerTls(pki["server_cert"], pki["server_key"], pki["ca"], mutual=True)
    with TritonServer(repo, tls=tls, admin_key=admin_key, log_path=tmp_path_factory.mktemp("log") / "tls.log",
                      startup_timeout=300) as server:
        yield server


def live(url: str, tls: ClientTls | None) -> bool | str:
    client = grpc_client(url, tls=tls)
    try:
        return client.is_server_live(client_timeout=10)
    except InferenceServerException as err:
        return err.message()
    finally:
        client.close()


def test_one_way_tls_refuses_plain_text_and_strangers_certificates(tmp_path, pki, other_pki):
    (tmp_path / "empty").mkdir()
    tls = ServerTls(pki["server_cert"], pki["server_key"])
    with TritonServer(tmp_path / "empty", models=[], tls=tls, log_path=tmp_path / "log") as server:
        assert live(server.grpc_url, ClientTls(pki["ca"])) is True
        assert live(server.grpc_url, None) is not True
        assert live(server.grpc_url, ClientTls(other_pki["ca"])) is not True  # a server we cannot verify
        with pytest.raises(ClientError, match="cannot reach"):
            DecoderSession(server.grpc_url, timeout=10)  # the plain-text client fails its handshake


def test_mutual_tls_needs_a_client_certificate_and_a_tls_call_decodes(mtls_server, pki, other_pki, local,
                                                                      stream_factory):
    url = mtls_server.grpc_url
    assert live(url, None) is not True
    assert live(url, ClientTls(pki["ca"])) is not True  # no client certificate
    assert live(url, ClientTls(pki["ca"], other_pki["client_cert"], other_pki["client_key"])) is not True
    client = ClientTls(pki["ca"], pki["client_cert"], pki["client_key"])
    assert live(url, client) is True
    stream = stream_factory(0, 4)
    frames = calls.decode(calls.Connection(url, timeout=240.0, tls=client), stream)
    assert_close_frames(frames, local_decode(local, stream))


def test_the_client_cli_speaks_tls(mtls_server, pki, stream_factory, tmp_path):
    out = tmp_path / "tls.mp4"
    command = [sys.executable, "-m", "facecodec.client", "-u", mtls_server.grpc_url, "-t", "240",
               "--tls-ca", pki["ca"], "--tls-cert", pki["client_cert"], "--tls-key", pki["client_key"],
               "decode", stream_factory(0, 4), "-o", out]
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0 and out.is_file(), result.stdout + result.stderr
    without_tls = command[:7] + command[13:]
    assert "--tls-ca" not in without_tls and "decode" in without_tls
    plain = subprocess.run([str(c) for c in without_tls], capture_output=True, text=True, timeout=600)
    assert plain.returncode != 0 and "failed to connect" in plain.stderr + plain.stdout


def grpc_admin_calls(client: grpcclient.InferenceServerClient) -> dict:
    """One request of each restricted gRPC protocol (and what it is)."""
    return {
        "statistics": lambda h: client.get_inference_statistics(headers=h, client_timeout=10),
        "model-repository": lambda h: client.get_model_repository_index(headers=h, client_timeout=10),
        "model-repository (unload)": lambda h: client.unload_model("no-such-model", headers=h, client_timeout=10),
        "shared-memory": lambda h: client.register_system_shared_memory("x", "/facecodec-x", 64, headers=h,
                                                                        client_timeout=10),
        "trace": lambda h: client.get_trace_settings(headers=h, client_timeout=10),
        "logging": lambda h: client.get_log_settings(headers=h, client_timeout=10),
    }


def test_restricted_protocols_refuse_a_client_without_the_admin_key(mtls_server, pki, admin_key):
    assert set(RESTRICTED) == {"model-repository", "shared-memory", "statistics", "trace", "logging"}
    client = grpc_client(mtls_server.grpc_url, tls=ClientTls(pki["ca"], pki["client_cert"], pki["client_key"]))
    try:
        for name, request in grpc_admin_calls(client).items():
            for headers in (None, admin_headers("not-the-key-0123456789")):
                with pytest.raises(InferenceServerException, match="restricted"):
                    request(headers)
        assert client.get_inference_statistics(headers=admin_headers(admin_key), client_timeout=10).model_stats
        assert client.get_model_repository_index(headers=admin_headers(admin_key), client_timeout=10).models
        # what a call needs stays open: health, metadata, model config, inference (the decode test)
        assert client.is_server_ready(client_timeout=10) and client.get_server_metadata(client_timeout=10).version
        assert client.get_model_config("decoder", client_timeout=10).config.name == "decoder"
        # the admin key never reaches the server's log
        assert admin_key not in mtls_server.log_path.read_text(errors="replace")
    finally:
        client.close()
    http = httpclient.InferenceServerClient(mtls_server.http_url.removeprefix("http://"))
    try:
        for request in (http.get_inference_statistics, http.get_model_repository_index, http.get_trace_settings,
                        http.get_log_settings, lambda **kw: http.unload_model("decoder", **kw)):
            with pytest.raises(InferenceServerException, match="restricted"):
                request()
        assert http.get_inference_statistics(headers=admin_headers(admin_key, "http"))["model_stats"]
        assert http.is_server_ready()  # the kubelet's probe needs no key
    finally:
        http.close()
