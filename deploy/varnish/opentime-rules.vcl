# The caching rules of opentime's Varnish configurations, included by opentime.vcl (one
# renderer) and fleet.vcl (several). What they do and why: see the top of opentime.vcl.

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
