vcl 4.1;

# Varnish in front of opentime. Tested against a real varnishd by tests/varnish.rs
# (opt-in: OPENTIME_VARNISH_TEST=1; Debian/Ubuntu package `varnish`).
#
# What opentime sends, and what this file does with it:
#
#   Personalized blocks (read the subscriber's context; URL carries s= and t=)
#     Cache-Control: no-cache + a strong ETag. The object may be stored but must be
#     revalidated on every open. Varnish's built-in VCL would make such an answer
#     uncacheable (hit-for-miss), and an object with a TTL of 0 is skipped at lookup, so it
#     could never be revalidated either. So: store it with a tiny TTL, no grace, and a long
#     `keep`. On the next open the object has expired but is kept, and Varnish asks opentime
#     with If-None-Match; a 304 reuses the stored bytes, a 200 replaces them the moment the
#     context changed.
#
#   Shared blocks (read no personal data)
#     Cache-Control: public, max-age=N, s-maxage=N, Last-Modified. Cached for N seconds as
#     sent (Varnish honours s-maxage), then revalidated the same way.
#
#   Fallbacks and renders with placeholder photos
#     Cache-Control: no-store. Never stored, so an outage is never pinned.
#
#   Vary
#     opentime sends `Vary: User-Agent` only for blocks whose answer depends on it (templates
#     that read `client`, locations from the IP, countdowns: the Word Outlook's first frame,
#     Apple's still), and `Vary: Origin` only when a CORS allow-list is set. Varnish keeps one
#     variant per value; nothing to do here. An answer that also depends on the client's
#     address (Apple's relay addresses, scanner networks, a location) comes `no-cache` and is
#     revalidated, like a personalized one.
#
#   Purging a campaign
#     Every answer carries `Surrogate-Key: CAMPAIGN CAMPAIGN:BLOCK`. From an address in the
#     `purgers` ACL:  curl -X PURGE -H 'Surrogate-Key: spring-sale' http://varnish/
#     bans every object of that campaign (or `spring-sale:cart` for one block).
#
# Behind Varnish, tell opentime about the hop so it locates readers by their address, not
# Varnish's: OPENTIME_TRUSTED_PROXY_HOPS=1 (Varnish appends the client to X-Forwarded-For).

backend opentime {
    .host = "127.0.0.1";
    .port = "8080";
    .connect_timeout = 1s;
    .first_byte_timeout = 5s;
}

acl purgers {
    "127.0.0.1";
    "::1";
}

sub vcl_recv {
    if (req.method == "PURGE") {
        if (!client.ip ~ purgers) {
            return (synth(405, "Not allowed"));
        }
        if (req.http.Surrogate-Key ~ "^[a-z0-9_:-]+$") {
            ban("obj.http.Surrogate-Key ~ (^|\s)" + req.http.Surrogate-Key + "(\s|$)");
            return (synth(200, "Banned " + req.http.Surrogate-Key));
        }
        return (synth(400, "Surrogate-Key: CAMPAIGN or CAMPAIGN:BLOCK"));
    }
    if (req.method != "GET" && req.method != "HEAD") {
        return (pass);
    }
    # Only block answers are cacheable; health, metrics and APIs always go through.
    if (req.url !~ "^/(img|html)/") {
        return (pass);
    }
    # Mail proxies send no cookies; a stray one must not split (or bypass) the cache.
    unset req.http.Cookie;
    unset req.http.Authorization;
    return (hash);
}

sub vcl_backend_response {
    # Fallbacks and placeholder renders: never stored.
    if (beresp.http.Cache-Control ~ "no-store") {
        set beresp.uncacheable = true;
        set beresp.ttl = 0s;
        return (deliver);
    }
    # Personalized: stored for revalidation only (see the top of this file).
    if (beresp.http.Cache-Control ~ "no-cache" && beresp.http.ETag) {
        set beresp.ttl = 1ms;
        set beresp.grace = 0s;
        set beresp.keep = 1d;
        return (deliver);
    }
    # Shared blocks: the TTL from s-maxage; keep them a while to revalidate cheaply.
    if (beresp.http.Cache-Control ~ "public") {
        set beresp.grace = 0s;
        set beresp.keep = 1h;
        return (deliver);
    }
}

sub vcl_deliver {
    # For debugging and the tests: whether this answer came from the cache.
    if (obj.hits > 0) {
        set resp.http.X-Cache = "HIT";
    } else {
        set resp.http.X-Cache = "MISS";
    }
}
