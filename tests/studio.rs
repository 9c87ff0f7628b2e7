//! The studio over HTTP: who gets in (token, session, CSRF), what a save checks and keeps,
//! where the studio is served (never on the public listener), and raw-merged plus addresses
//! on the real open and click routes. The browser drives the studio in `studio_browser.rs`.

mod common;

use common::*;

fn with_session(request: reqwest::RequestBuilder, cookie: &str) -> reqwest::RequestBuilder {
    request.header("cookie", format!("opentime_studio={cookie}"))
}

#[tokio::test]
async fn without_the_token_every_studio_url_is_refused_or_sent_to_login() {
    let studio = TestStudio::start().await;
    let client = no_redirects();
    for page in [
        "/studio/",
        "/studio/edit/demo",
        "/studio/edit/demo?file=cart.svg",
    ] {
        let answer = send(client.get(studio.url(page))).await;
        assert_eq!(answer.status, 303, "{page}");
        let location = answer.header("location").unwrap_or_default();
        assert!(
            location.starts_with("/studio/login?next=%2Fstudio%2F"),
            "{page} → {location}"
        );
    }
    for path in [
        "/studio/assets/studio.js",
        "/studio/assets/studio.css",
        "/studio/events",
        "/studio/render/demo/cart.png?sample=alice",
        "/studio/fallback/demo/cart.png",
        "/studio/api/file/demo?file=cart.svg",
        "/studio/api/history/demo?file=cart.svg",
        "/studio/api/diff/demo?file=cart.svg&id=1",
        "/studio/nothing-here",
    ] {
        let answer = send(client.get(studio.url(path))).await;
        assert_eq!(answer.status, 401, "{path}");
        assert!(!answer.text().contains("svg"), "{path} reveals nothing");
    }
    for path in [
        "/studio/api/save/demo?file=cart.svg",
        "/studio/api/preview/demo?file=cart.svg&block=cart",
        "/studio/logout",
        "/studio/render/demo/cart.png",
    ] {
        let answer = send(client.post(studio.url(path)).body("x")).await;
        assert_eq!(answer.status, 401, "POST {path}");
    }
    let forged = send(with_session(client.get(studio.url("/studio/")), "0123abcd")).await;
    assert_eq!(forged.status, 303, "a made-up session is no session");

    let wrong = send(client.get(studio.url("/studio/?token=wrong-token-0000000000"))).await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.header("set-cookie").is_none());
    let login = send(client.get(studio.url("/studio/login"))).await;
    assert_eq!(login.status, 200);
    assert!(
        login.text().contains("name=\"token\""),
        "the login page asks for the token"
    );
    let bad = send(
        client
            .post(studio.url("/studio/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("token=nope&next=%2Fstudio%2F"),
    )
    .await;
    assert_eq!(bad.status, 401);
    let good = send(
        client
            .post(studio.url("/studio/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "token={STUDIO_TOKEN}&next=https%3A%2F%2Fevil.example%2F"
            )),
    )
    .await;
    assert_eq!(good.status, 303);
    assert_eq!(
        good.header("location"),
        Some("/studio/"),
        "no redirect off the studio"
    );
    let cookie = good.header("set-cookie").unwrap_or_default();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        !cookie.contains("Secure"),
        "plain HTTP on loopback: {cookie}"
    );
    let behind_https = send(
        client
            .get(studio.url(&format!(
                "/studio/edit/demo?token={STUDIO_TOKEN}&file=cart.svg"
            )))
            .header("x-forwarded-proto", "https"),
    )
    .await;
    assert_eq!(behind_https.status, 303);
    assert_eq!(
        behind_https.header("location"),
        Some("/studio/edit/demo?file=cart.svg")
    );
    assert!(behind_https
        .header("set-cookie")
        .unwrap_or_default()
        .contains("; Secure"));

    let (session, _) = studio.login().await;
    let page = send(with_session(client.get(studio.url("/studio/")), &session)).await;
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(
        !html.contains(SECRET) && !html.contains(STUDIO_TOKEN),
        "no secret in the page"
    );
    studio.shutdown().await;
}

#[tokio::test]
async fn writes_without_the_sessions_csrf_token_are_refused_and_change_nothing() {
    let studio = TestStudio::start().await;
    let (cookie, csrf) = studio.login().await;
    let client = patient();
    let path = studio.demo_file("points.svg");
    let before = std::fs::read(&path).unwrap();
    let edited = String::from_utf8(before.clone())
        .unwrap()
        .replace("</svg>", "<!-- edited --></svg>");
    let save = studio.url("/studio/api/save/demo?file=points.svg");

    let no_token = send(with_session(client.post(&save), &cookie).body(edited.clone())).await;
    assert_eq!(no_token.status, 403, "{}", no_token.text());
    let wrong = send(
        with_session(client.post(&save), &cookie)
            .header("x-opentime-csrf", "0000")
            .body(edited.clone()),
    )
    .await;
    assert_eq!(wrong.status, 403);
    let foreign = send(
        with_session(client.post(&save), &cookie)
            .header("x-opentime-csrf", &csrf)
            .header("origin", "https://evil.example")
            .body(edited.clone()),
    )
    .await;
    assert_eq!(foreign.status, 403);
    assert_eq!(std::fs::read(&path).unwrap(), before, "nothing was written");

    let saved = send(
        with_session(client.post(&save), &cookie)
            .header("x-opentime-csrf", &csrf)
            .body(edited.clone()),
    )
    .await;
    assert_eq!(saved.status, 200, "{}", saved.text());
    assert_eq!(saved.json()["saved"], true);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), edited);
    studio.shutdown().await;
}

/// A client that waits as long as a save's check may take in a debug build on a busy machine.
fn patient() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(120))
        .build()
        .expect("http client")
}

#[tokio::test]
async fn a_save_is_checked_against_every_sample_and_every_save_is_kept() {
    let studio = TestStudio::start().await;
    let (cookie, csrf) = studio.login().await;
    let client = patient();
    let post = |path: &str, body: String| {
        with_session(client.post(studio.url(path)), &cookie)
            .header("x-opentime-csrf", &csrf)
            .body(body)
    };
    let path = studio.demo_file("cart.svg");
    let original = std::fs::read_to_string(&path).unwrap();

    // Alice has a cart, Bob's is empty: reading item 0 unguarded breaks Bob's render only.
    let breaks_bob = original.replace("</svg>", "<!-- {{ ctx.cart.items.0.name }} --></svg>");
    let preview = send(post(
        "/studio/api/preview/demo?file=cart.svg&block=cart&sample=alice",
        breaks_bob.clone(),
    ))
    .await;
    assert_eq!(
        preview.status,
        200,
        "alice's preview renders: {}",
        preview.text()
    );
    assert_eq!(preview.header("content-type"), Some("image/png"));
    let refused = send(post("/studio/api/save/demo?file=cart.svg", breaks_bob)).await;
    assert_eq!(refused.status, 422);
    let answer = refused.json();
    assert_eq!(answer["saved"], false);
    let problems = answer["problems"].to_string();
    assert!(problems.contains("with bob"), "{problems}");
    assert!(
        !problems.contains("opentime-studio-"),
        "no staging path leaks: {problems}"
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        original,
        "nothing written"
    );

    // A template that does not compile: file:line:column and the line itself.
    let broken = original.replacen("</svg>", "\n{{ oops( }}\n</svg>", 1);
    let line = broken.lines().position(|l| l.contains("oops(")).unwrap() + 1;
    let compile = send(post(
        "/studio/api/preview/demo?file=cart.svg&block=cart&sample=alice",
        broken,
    ))
    .await;
    assert_eq!(compile.status, 422);
    let place = &compile.json()["error"]["place"];
    assert_eq!(place["file"], "cart.svg");
    assert_eq!(place["line"], line as u64);

    let better = original.replace("</svg>", "<!-- reviewed --></svg>");
    let saved = send(post("/studio/api/save/demo?file=cart.svg", better.clone())).await;
    assert_eq!(saved.status, 200, "{}", saved.text());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), better);
    let history = send(with_session(
        client.get(studio.url("/studio/api/history/demo?file=cart.svg")),
        &cookie,
    ))
    .await;
    let versions = history.json()["versions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        versions.len(),
        2,
        "the save and what was there before it: {versions:?}"
    );
    let first = versions[1]["id"].as_str().unwrap();
    assert_eq!(versions[1]["original"], true);
    let diff = send(with_session(
        client.get(studio.url(&format!("/studio/api/diff/demo?file=cart.svg&id={first}"))),
        &cookie,
    ))
    .await;
    assert!(
        diff.text().contains("+<!-- reviewed -->"),
        "{}",
        diff.text()
    );
    let old = send(with_session(
        client.get(studio.url(&format!(
            "/studio/api/version/demo?file=cart.svg&id={first}"
        ))),
        &cookie,
    ))
    .await;
    assert_eq!(old.text(), original);
    let restored = send(post("/studio/api/save/demo?file=cart.svg", old.text())).await;
    assert_eq!(restored.status, 200);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        original,
        "restored"
    );

    for bad in ["../demo/cart.svg", "/etc/passwd", "missing.svg"] {
        let answer = send(post(
            &format!("/studio/api/save/demo?file={bad}"),
            "x".into(),
        ))
        .await;
        assert_eq!(answer.status, 400, "{bad}");
    }
    studio.shutdown().await;
}

#[tokio::test]
async fn the_studio_is_on_the_admin_listener_only_when_asked_and_never_on_the_public_one() {
    let server = TestServer::builder()
        .embedded_store()
        .configure(|args| {
            args.admin_listen = Some("127.0.0.1:0".parse().unwrap());
            args.admin_studio = true;
            args.studio.studio_token = Some(STUDIO_TOKEN.into());
        })
        .start()
        .await;
    let client = no_redirects();
    for path in ["/studio/", "/studio/login", "/studio/assets/studio.js"] {
        assert_eq!(
            send(client.get(server.url(path))).await.status,
            404,
            "public {path}"
        );
    }
    let login = send(client.get(server.admin_url(&format!("/studio/?token={STUDIO_TOKEN}")))).await;
    assert_eq!(login.status, 303);
    let cookie = login
        .header("set-cookie")
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .to_owned();
    let page = send(
        client
            .get(server.admin_url("/studio/"))
            .header("cookie", cookie),
    )
    .await;
    assert_eq!(page.status, 200);
    assert!(page.text().contains("data-block=\"cart\""));
    assert_eq!(
        send(client.get(server.admin_url("/healthz"))).await.status,
        200
    );

    let off = TestServer::builder()
        .embedded_store()
        .configure(|args| args.admin_listen = Some("127.0.0.1:0".parse().unwrap()))
        .start()
        .await;
    assert_eq!(
        send(client.get(off.admin_url("/studio/"))).await.status,
        404,
        "off by default"
    );
}

#[tokio::test]
async fn a_raw_merged_plus_address_opens_and_clicks_as_itself() {
    let seed = tempfile::tempdir().unwrap();
    let subscriber = "bob+news@example.com";
    std::fs::copy(
        sample_path("alice"),
        seed.path().join(format!("{subscriber}.json")),
    )
    .unwrap();
    let server = TestServer::builder()
        .embedded_store_seeded(seed.path())
        .start()
        .await;
    let token = token(subscriber);
    // The ESP merged the id raw: `+` unencoded, as `s=bob+news@example.com`.
    let image = get(&server.url(&format!("/img/demo/cart.png?s={subscriber}&t={token}"))).await;
    assert_eq!(image.status, 200);
    assert_eq!(
        image.header("x-opentime-fallback"),
        None,
        "not bad-subscriber"
    );
    assert_eq!(image.png().dimensions(), (600, 300));
    let encoded = get(&server.url(&format!(
        "/img/demo/cart.png?s=bob%2Bnews%40example.com&t={token}"
    )))
    .await;
    assert_eq!(encoded.header("x-opentime-fallback"), None);
    assert_eq!(
        encoded.body, image.body,
        "raw and encoded ids are the same subscriber"
    );
    let click = send(
        no_redirects().get(server.url(&format!("/click/demo/cart?s={subscriber}&t={token}&i=1"))),
    )
    .await;
    assert_eq!(click.status, 302);
    assert_eq!(
        click.header("location"),
        Some("https://shop.example.com/p/mug-01"),
        "alice's item 1"
    );
}
