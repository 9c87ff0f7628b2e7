vcl 4.1;

# Varnish in front of one opentime. Tested against a real varnishd by tests/varnish.rs
# (opt-in: OPENTIME_VARNISH_TEST=1; Debian/Ubuntu package `varnish`). The caching rules are in
# opentime-rules.vcl (keep it beside this file); fleet.vcl is the same in front of several
# opentime servers.
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
# Varnish's: OPENTIME_TRUSTED_PROXY_HOPS=1 (Varnish appends the client to X-Forwarded-For), and
# set OPENTIME_MAX_CONNECTIONS_PER_ADDRESS high or 0 (every connection comes from Varnish). Run
# varnishd with `-p backend_idle_timeout=20`, below opentime's OPENTIME_KEEPALIVE_TIMEOUT_SECS
# (30), so Varnish never sends a request on a connection opentime is closing.

backend opentime {
    .host = "127.0.0.1";
    .port = "8080";
    .connect_timeout = 1s;
    .first_byte_timeout = 5s;
}

include "./opentime-rules.vcl";
