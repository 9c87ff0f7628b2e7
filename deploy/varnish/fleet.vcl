vcl 4.1;

# Varnish in front of a fleet of opentime servers (three here; add a backend and an
# add_backend line per server). The caching rules are opentime.vcl's (opentime-rules.vcl,
# keep it beside this file). Used by scripts/fleet, which rewrites the ports.
#
# Each URL goes to one renderer, chosen by consistent hashing of the URL (the shard director):
# the same block for the same subscriber is always rendered by the same server, so each
# server's render cache holds its share of the subscribers instead of every server rendering
# everyone. The renderers keep no state of their own (contexts, locks and events are in Redis),
# so any of them may be stopped, killed or restarted:
#
#   - a renderer that stops answering /healthz is out of the ring after two failed probes;
#     only its share of the URLs moves (to the next renderer on the ring), and back when it
#     returns;
#   - until then, a fetch that cannot reach it (connection refused or reset, no answer in
#     time) is retried at once on the next renderer of the ring (`alt`), up to twice, so
#     readers see no error while a renderer dies.
#
# Behind it: OPENTIME_TRUSTED_PROXY_HOPS=1 and OPENTIME_MAX_CONNECTIONS_PER_ADDRESS=0 on every
# renderer (all connections come from Varnish's address). Run varnishd with
# `-p backend_idle_timeout=20`, below the renderers' OPENTIME_KEEPALIVE_TIMEOUT_SECS (30): a
# proxy that keeps an idle connection longer than the server may send a request on one the
# server is just closing.

import directors;
import std;

probe renderer_health {
    .url = "/healthz";
    .interval = 1s;
    .timeout = 500ms;
    .window = 3;
    .threshold = 2;
    .initial = 2;
}

backend renderer1 {
    .host = "127.0.0.1";
    .port = "8081";
    .connect_timeout = 500ms;
    .first_byte_timeout = 5s;
    .probe = renderer_health;
}

backend renderer2 {
    .host = "127.0.0.1";
    .port = "8082";
    .connect_timeout = 500ms;
    .first_byte_timeout = 5s;
    .probe = renderer_health;
}

backend renderer3 {
    .host = "127.0.0.1";
    .port = "8083";
    .connect_timeout = 500ms;
    .first_byte_timeout = 5s;
    .probe = renderer_health;
}

sub vcl_init {
    new renderers = directors.shard();
    renderers.add_backend(renderer1);
    renderers.add_backend(renderer2);
    renderers.add_backend(renderer3);
    renderers.reconfigure();
}

sub vcl_recv {
    # Context API writes are idempotent: keep their body so a failed fetch can be sent again.
    if (req.method == "PATCH" || req.method == "POST") {
        std.cache_req_body(64KB);
    }
}

sub vcl_backend_fetch {
    # The URL's renderer; on a retry, the next one on the ring.
    set bereq.backend = renderers.backend(by=URL, alt=bereq.retries);
}

sub vcl_backend_error {
    # The renderer could not be reached or died mid-answer: try the next one.
    if (bereq.retries < 2) {
        return (retry);
    }
}

sub vcl_backend_response {
    # Take the whole answer before passing it on, so a renderer that dies mid-body is retried
    # on the next one instead of handing a reader half an image.
    set beresp.do_stream = false;
}

include "./opentime-rules.vcl";
