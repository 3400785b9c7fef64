"""WebSocket echo through the proxy: wss via interception, ws via CONNECT and absolute-form."""

import os

import websocket

from e2e_helpers import connect, connect_tunnel, read_response, url_path, ws_accept, ws_frame, ws_key, ws_read_frame


def _echo_roundtrip(ws):
    ws.send("hello websocket")
    assert ws.recv() == "hello websocket"
    blob = os.urandom(70000)
    ws.send_binary(blob)
    assert ws.recv() == blob
    ws.close()


def _ws_flow(proxy, host="example.test"):
    flows = proxy.wait_flows(lambda f: url_path(f) == "/ws" and f.get("host") == host)
    f = flows[0]
    assert f["status"] == 101, f
    return f


def test_wss_through_interception(proxy):
    ws = websocket.create_connection(
        "wss://example.test/ws",
        http_proxy_host="127.0.0.1",
        http_proxy_port=proxy.port,
        proxy_type="http",
        sslopt={"ca_certs": str(proxy.ca_path)},
        timeout=15,
    )
    _echo_roundtrip(ws)
    _ws_flow(proxy)


def test_ws_plain_through_connect_tunnel(proxy):
    # websocket-client always tunnels through an HTTP proxy with CONNECT (here example.test:80),
    # so the proxy sees plaintext HTTP inside the tunnel.
    ws = websocket.create_connection(
        "ws://example.test/ws",
        http_proxy_host="127.0.0.1",
        http_proxy_port=proxy.port,
        proxy_type="http",
        timeout=15,
    )
    _echo_roundtrip(ws)
    _ws_flow(proxy)


def _raw_upgrade_and_echo(sock, request_target, host_header):
    key = ws_key()
    sock.sendall(
        (
            f"GET {request_target} HTTP/1.1\r\n"
            f"Host: {host_header}\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    resp = read_response(sock)
    assert resp.status == 101, (resp.status, resp.headers, resp.body[:300])
    assert resp.headers.get("upgrade", "").lower() == "websocket"
    assert resp.headers.get("sec-websocket-accept") == ws_accept(key)
    sock.sendall(ws_frame(b"raw frame echo", opcode=1))
    opcode, payload, rest = ws_read_frame(sock, resp.rest)
    assert (opcode, payload) == (1, b"raw frame echo")
    sock.sendall(ws_frame(b"\x03\xe8", opcode=8))  # close 1000
    opcode, _, _ = ws_read_frame(sock, rest)
    assert opcode == 8


def test_ws_absolute_form_raw_socket(proxy, upstreams):
    host = f"local.test:{upstreams.http_port}"  # resolve maps local.test to 127.0.0.1, keeping the port
    sock = connect(proxy.port)
    try:
        _raw_upgrade_and_echo(sock, f"http://{host}/ws", host)
    finally:
        sock.close()
    _ws_flow(proxy, host="local.test")


def test_ws_raw_inside_connect_tunnel(proxy):
    sock, resp = connect_tunnel(proxy.port, "example.test:80")
    try:
        assert resp.status == 200, resp
        _raw_upgrade_and_echo(sock, "/ws", "example.test")
    finally:
        sock.close()
    _ws_flow(proxy)
