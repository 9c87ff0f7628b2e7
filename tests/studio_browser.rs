//! The studio in a real headless Chromium, one browser session for the whole walk (each step
//! asserts on what the page shows): the gallery loads with every image decoded and no console
//! error; Outlook gets a one-frame countdown; time travel past the deadline shows the expired
//! state; a template changed on disk shows within 2 s; a broken one shows its file:line; the
//! editor refuses a save that breaks a sample and leaves the file alone.
//!
//! With `OPENTIME_STUDIO_SCREENSHOTS=1` the walk also writes the README's screenshots
//! (`docs/studio-gallery.png`, `docs/studio-editor.png`).

mod common;

use common::*;
use std::time::{Duration, Instant};

/// How long a page may take to render every block of the demo campaign in a debug build on a
/// busy machine (a wait limit, not a measurement).
const RENDERS: Duration = Duration::from_secs(60);
/// The live-reload bound the studio promises.
const LIVE_RELOAD: Duration = Duration::from_secs(2);

const EVERY_CARD_DONE: &str = "document.body.dataset.pending === '0' && \
    document.querySelectorAll('.card').length > 0 && \
    [...document.querySelectorAll('.card')].every(c => c.dataset.state !== 'loading') && \
    [...document.images].every(i => i.complete && i.naturalWidth > 0)";

fn countdown_card(attribute: &str) -> String {
    format!("document.querySelector('#demo-countdown .card:not(.fallback)')?.dataset.{attribute}")
}

async fn choose(browser: &Browser, id: &str, value: &str) {
    browser
        .run(&format!(
            "const s = document.getElementById('{id}'); s.value = '{value}'; \
             s.dispatchEvent(new Event('change', {{bubbles: true}}));"
        ))
        .await;
}

fn keep_screenshot(name: &str, png: &[u8]) {
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    if std::env::var_os("OPENTIME_STUDIO_SCREENSHOTS").is_some() {
        std::fs::write(repo().join("docs").join(name), png).expect("write screenshot");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_studio_in_a_browser() {
    let studio = TestStudio::start().await;
    let browser = Browser::start().await;
    let walk = Instant::now();

    // Logging in with ?token= drops the token from the URL.
    browser
        .client
        .goto(&studio.url(&format!("/studio/?token={STUDIO_TOKEN}")))
        .await
        .expect("goto");
    let url = browser.client.current_url().await.expect("url");
    assert_eq!(url.path(), "/studio/");
    assert_eq!(url.query(), None, "the token is gone from the address bar");

    // The gallery: every image decoded, no console error.
    assert!(
        browser.wait_until(EVERY_CARD_DONE, RENDERS).await,
        "every card rendered"
    );
    let images = browser
        .run("return [...document.images].map(i => [i.alt, i.naturalWidth]);")
        .await;
    let images = images.as_array().cloned().unwrap_or_default();
    assert!(
        images.len() >= 40,
        "every block × sample and the fallbacks: {}",
        images.len()
    );
    for image in &images {
        assert!(image[1].as_u64() > Some(0), "{image} decoded");
    }
    let states = browser
        .run("return [...document.querySelectorAll('.card')].map(c => c.dataset.state);")
        .await
        .to_string();
    assert!(!states.contains("error"), "{states}");
    let frames = browser
        .run("return document.querySelectorAll('.card iframe').length;")
        .await;
    assert!(frames.as_u64() >= Some(2), "HTML fragments in frames");
    assert_eq!(browser.console_errors().await, Vec::<String>::new());
    assert_eq!(
        browser.run("return window.__studioErrors;").await,
        serde_json::json!([])
    );
    let paint = browser
        .run("return performance.getEntriesByType('paint').find(e => e.name === 'first-contentful-paint')?.startTime;")
        .await;
    println!(
        "first contentful paint of the gallery: {paint} ms; every render done after {:?}",
        walk.elapsed()
    );
    keep_screenshot("studio-gallery.png", &browser.screenshot().await);
    browser
        .run("const ship = document.querySelector('#demo-cart button.ship'); ship.click(); ship.scrollIntoView();")
        .await;
    let snippet = browser
        .run("return document.querySelector('#ship-demo-cart .snippet[data-esp=\"mailchimp\"] code').textContent;")
        .await;
    assert!(
        snippet
            .as_str()
            .unwrap_or_default()
            .contains("/img/demo/cart.png?s=*|URL:EMAIL|*&amp;t="),
        "the Mailchimp snippet: {snippet}"
    );
    keep_screenshot("studio-ship.png", &browser.screenshot().await);
    browser.run("window.scrollTo(0, 0);").await;

    // Outlook for Windows shows a GIF's first frame only: the countdown is one frame.
    assert_eq!(
        browser
            .run(&format!("return {};", countdown_card("frames")))
            .await,
        "60",
        "animated for other clients"
    );
    choose(&browser, "client", "outlook-word").await;
    let one_frame = format!(
        "{} === '1' && {} === 'first-frame'",
        countdown_card("frames"),
        countdown_card("state")
    );
    assert!(
        browser.wait_until(&one_frame, RENDERS).await,
        "one frame for Outlook"
    );
    let cookie = browser
        .client
        .get_named_cookie("opentime_studio")
        .await
        .expect("the session cookie")
        .value()
        .to_owned();
    let gif = send(
        client()
            .get(studio.url("/studio/render/demo/countdown.gif?client=outlook-word"))
            .header("cookie", format!("opentime_studio={cookie}")),
    )
    .await;
    assert_eq!(
        opentime::gif::decode::decode(&gif.body)
            .expect("a GIF")
            .canvases
            .len(),
        1
    );

    // An edited context: the SMS channel saw an upgrade, so the upgrade offer is suppressed.
    browser
        .run(
            "document.getElementById('context').value = JSON.stringify({profile: {first_name: 'Ada'}, \
             loyalty: {points: 10, tier: 'Silver'}, sms: {intent: 'upgrade'}});",
        )
        .await;
    choose(&browser, "sample", "__edited").await;
    let upgrade =
        "document.querySelector('#demo-upgrade .card[data-key=\"png:edited\"]')?.dataset.state";
    assert!(
        browser
            .wait_until(&format!("{upgrade} === 'suppressed'"), RENDERS)
            .await,
        "suppressed for the edited context"
    );
    choose(&browser, "sample", "").await;

    // Time travel past the deadline (2027-01-01 in Berlin): the expired state.
    choose(&browser, "client", "unknown").await;
    choose(&browser, "at", "2027-01-02T12:00").await;
    assert!(
        browser
            .wait_until(
                &format!("{} === 'expired'", countdown_card("state")),
                RENDERS
            )
            .await,
        "expired after the deadline"
    );
    choose(&browser, "at", "").await;
    assert!(browser.wait_until(EVERY_CARD_DONE, RENDERS).await);

    // A template changed on disk: the open page shows it within 2 s.
    let points = studio.demo_file("points.svg");
    let original = std::fs::read_to_string(&points).unwrap();
    let card = "document.querySelector('#demo-points .card[data-key=\"png:alice\"] img')";
    let before = browser.run(&format!("return {card}.src;")).await;
    let generation = browser
        .run("return document.body.dataset.generation;")
        .await;
    std::fs::write(&points, original.replace(" points</text>", " stars</text>")).unwrap();
    let written_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let updated = format!(
        "document.body.dataset.generation !== {generation} && {card}.src !== {before} && \
         {card}.complete && {card}.naturalWidth > 0"
    );
    assert!(
        browser.wait_until(&updated, LIVE_RELOAD).await,
        "updated within 2 s"
    );
    let caption = browser
        .run("return document.querySelector('#demo-points .card[data-key=\"png:alice\"] .stats').textContent;")
        .await;
    let times = browser
        .run("return [document.body.dataset.reloadedAt, document.querySelector('#demo-points .card[data-key=\"png:alice\"]').dataset.shownAt].map(Number);")
        .await;
    let shown_after = times[1]
        .as_u64()
        .unwrap_or(u64::MAX)
        .saturating_sub(written_at as u64);
    println!(
        "the changed card ({caption}): reload announced {} ms and the new picture shown {shown_after} ms after the write",
        times[0].as_u64().unwrap_or(0).saturating_sub(written_at as u64)
    );

    // A broken template: its file:line, the line itself, and the last good render beside it.
    let broken = original.replacen("<text", "{{ oops( }}\n<text", 1);
    let line = broken.lines().position(|l| l.contains("oops(")).unwrap() + 1;
    std::fs::write(&points, &broken).unwrap();
    let banner = "document.querySelector('[data-refused=\"demo\"]')";
    assert!(
        browser
            .wait_until(&format!("!{banner}.hidden"), LIVE_RELOAD)
            .await,
        "the error shows"
    );
    let shown = browser.run(&format!("return {banner}.innerText;")).await;
    let shown = shown.as_str().unwrap_or_default();
    assert!(shown.contains(&format!("points.svg:{line}:")), "{shown}");
    assert!(shown.contains("{{ oops( }}"), "the offending line: {shown}");
    assert!(
        browser
            .run(&format!("return {card}.naturalWidth;"))
            .await
            .as_u64()
            > Some(0),
        "the last good render stays"
    );
    std::fs::write(&points, &original).unwrap();
    assert!(
        browser
            .wait_until(&format!("{banner}.hidden"), LIVE_RELOAD)
            .await,
        "fixed"
    );

    // The editor: preview as you type; a save that breaks a sample is refused.
    browser
        .client
        .goto(&studio.url("/studio/edit/demo?file=cart.svg"))
        .await
        .expect("goto");
    let preview_done = "document.getElementById('preview-image').naturalWidth > 0";
    assert!(
        browser.wait_until(preview_done, RENDERS).await,
        "the preview renders"
    );
    keep_screenshot("studio-editor.png", &browser.screenshot().await);
    let cart = studio.demo_file("cart.svg");
    let on_disk = std::fs::read(&cart).unwrap();
    browser
        .run(
            "const s = document.getElementById('source'); \
             s.value = s.value.replace('</svg>', '<!-- {{ ctx.cart.items.0.name }} --></svg>'); \
             s.dispatchEvent(new Event('input')); document.getElementById('save').click();",
        )
        .await;
    let refused = "document.querySelector('.save-result.refused')";
    assert!(
        browser.wait_until(refused, RENDERS).await,
        "the save is refused"
    );
    let why = browser.run(&format!("return {refused}.innerText;")).await;
    assert!(
        why.as_str().unwrap_or_default().contains("with bob"),
        "{why}"
    );
    assert_eq!(
        std::fs::read(&cart).unwrap(),
        on_disk,
        "the file is unchanged"
    );
    assert_eq!(
        browser
            .console_errors()
            .await
            .iter()
            .filter(|e| !e.contains("422"))
            .count(),
        0
    );

    println!("browser walk: {:?}", walk.elapsed());
    browser.close().await;
    studio.shutdown().await;
}
