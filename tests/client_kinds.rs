//! Who fetched, over real User-Agent strings and addresses: each row is one fetch as a mail
//! client, an image proxy or a machine makes it, with where the string was seen, and what
//! opentime makes of it — the client kind, whether it is a machine's fetch (never a lock, never
//! a person's open or click), and what the demo countdown sends it: the running animation, its
//! first frame alone (the Outlook that renders with Word), or the still that says when it ends
//! (a copy kept and shown later: Apple's prefetch). The classification runs with the shipped
//! rules and the test Apple egress list; the countdown answer is decided by the same code the
//! server runs (`RenderInput::decide`).

mod common;

use common::{apple_egress_fixture, repo, utc};
use opentime::blocks::Catalog;
use opentime::open::{Opener, RenderInput, TemplateInput};
use opentime::render::{Format, Renderer};
use opentime::sources::apple_egress::AppleEgress;
use opentime::sources::mail_clients::{ClientKind, ClientRules};
use opentime::sources::Sources;
use std::net::IpAddr;
use std::sync::Arc;

/// What the demo countdown sends a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shows {
    /// The running GIF.
    Animation,
    /// Its first frame alone.
    FirstFrame,
    /// When it ends, as a date and time.
    Still,
}

use ClientKind::*;
use Shows::*;

/// A person's address (documentation range), a Google mail netblock, an Apple relay egress
/// address of the test list (IPv4 and IPv6), and security gateways' networks (Exchange Online
/// Protection, Barracuda, Mimecast).
const PERSON: &str = "198.51.100.23";
const GOOGLE: &str = "66.102.8.17";
const RELAY: &str = "172.224.226.9";
const RELAY_V6: &str = "2a02:26f7:b3c0:4000::31";
const EXCHANGE_ONLINE: &str = "40.107.22.51";
const BARRACUDA: &str = "209.222.82.140";
const MIMECAST: &str = "207.211.30.44";

/// (User-Agent, address, kind, machine, what the countdown shows). Every string was seen where
/// its comment says.
const FETCHES: &[(&str, &str, ClientKind, bool, Shows)] = &[
    // --- Apple Mail Privacy Protection -------------------------------------------------------
    // The MPP prefetch: exactly "Mozilla/5.0" (ESP reports since iOS 15, e.g. Litmus "Apple
    // Mail Privacy Protection" and SparkPost's MPP notes), from a relay egress address…
    ("Mozilla/5.0", RELAY, AppleMpp, true, Still),
    ("Mozilla/5.0", RELAY_V6, AppleMpp, true, Still),
    // …and the same exact User-Agent from an address missing from an out-of-date list.
    ("Mozilla/5.0", PERSON, AppleMpp, true, Still),
    // Apple Mail on macOS (its own User-Agent, no Safari token: Litmus and ESP client reports)
    // fetching through a relay egress address: MPP.
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)", RELAY, AppleMpp, true, Still),
    // The same app, MPP off, from a person's address: a mail app.
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)", PERSON, MailApp, false, Animation),
    // Apple's corporate network (17.0.0.0/8) is not a relay: Apple staff reading in Apple Mail.
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)", "17.58.63.1", MailApp, false, Animation),
    // iOS Mail (WebKit without Safari's token), through a relay over IPv6, and directly.
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148", RELAY_V6, AppleMpp, true, Still),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148", PERSON, MailApp, false, Animation),
    // Safari behind iCloud Private Relay shares the egress addresses but says Safari: a person
    // (MDN "User-Agent" Safari example; Apple's egress list documentation).
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15", RELAY, Browser, false, Animation),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 Mobile/15E148 Safari/604.1", RELAY_V6, Browser, false, Animation),
    // --- Gmail -------------------------------------------------------------------------------
    // Gmail's image proxy, fetching as the message is opened (ESP open-tracking docs, e.g.
    // Mailgun and Postmark on "GoogleImageProxy").
    ("Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)", GOOGLE, GmailProxy, false, Animation),
    ("Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)", PERSON, GmailProxy, false, Animation),
    // Gmail's prefetch: an Edge 12 User-Agent from Google's network (SparkPost, "Gmail is
    // Prefetching Images, Leading to Marginally Inflated Opens", 2022).
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/42.0.2311.135 Safari/537.36 Edge/12.246 Mozilla/5.0", GOOGLE, GmailProxy, true, Animation),
    // The same string from elsewhere: nobody browses with a 2015 Edge build.
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/42.0.2311.135 Safari/537.36 Edge/12.246 Mozilla/5.0", PERSON, Machine, true, Animation),
    // --- Yahoo -------------------------------------------------------------------------------
    // Yahoo Mail's proxy (Yahoo help article SLN28749, linked from the User-Agent itself).
    ("Mozilla/5.0 (compatible; YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html)", PERSON, YahooProxy, false, Animation),
    // The bare form seen in public open-tracking test fixtures.
    ("YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html", PERSON, YahooProxy, false, Animation),
    // --- Link previewers and probes ------------------------------------------------------------
    // Office probing a link before opening it (Microsoft's Office Existence Discovery protocol).
    ("Microsoft Office Existence Discovery", PERSON, Machine, true, Animation),
    // Bing's page preview (matomo device-detector bot fixtures; Bing webmaster docs).
    ("Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/534+ (KHTML, like Gecko) BingPreview/1.0b", PERSON, Machine, true, Animation),
    ("Mozilla/5.0 (Windows NT 6.3; WOW64; Trident/7.0; rv:11.0; BingPreview/1.0b) like Gecko", PERSON, Machine, true, Animation),
    // iMessage's link preview (StackOverflow question 41499402; used by link-preview libraries).
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_11_1) AppleWebKit/601.2.4 (KHTML, like Gecko) Version/9.0.1 Safari/601.2.4 facebookexternalhit/1.1 Facebot Twitterbot/1.0", RELAY, Machine, true, Animation),
    // Facebook's crawler (Meta for Developers, "The Facebook Crawler").
    ("facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)", PERSON, Machine, true, Animation),
    // Slack's unfurler (Slack API docs, "Robots").
    ("Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", PERSON, Machine, true, Animation),
    // Discord, WhatsApp, Telegram, LinkedIn and Skype previews (device-detector bot fixtures
    // and the vendors' crawler pages).
    ("Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)", PERSON, Machine, true, Animation),
    ("WhatsApp/2.23.20.0", PERSON, Machine, true, Animation),
    ("TelegramBot (like TwitterBot)", PERSON, Machine, true, Animation),
    ("LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)", PERSON, Machine, true, Animation),
    ("SkypeUriPreview Preview/0.5", PERSON, Machine, true, Animation),
    // Search crawlers (Google Search Central, Bing Webmaster docs).
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", PERSON, Machine, true, Animation),
    ("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", PERSON, Machine, true, Animation),
    // A headless browser (Chrome's own headless mode User-Agent).
    ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/129.0.0.0 Safari/537.36", PERSON, Machine, true, Animation),
    // --- Security gateways with stock browser User-Agents, known by network ------------------
    // Microsoft Safe Links / Defender detonation from Exchange Online Protection's mail-flow
    // ranges (Microsoft 365 "URLs and IP address ranges"), with Chrome's and Edge's
    // User-Agents (Chrome UA-reduction docs; Microsoft Edge "user agent string" docs).
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36", EXCHANGE_ONLINE, Machine, true, Animation),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0", EXCHANGE_ONLINE, Machine, true, Animation),
    // Barracuda Email Security Service (Barracuda Campus "IP ranges") and Mimecast ("Data
    // Centers and URLs").
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36", BARRACUDA, Machine, true, Animation),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:129.0) Gecko/20100101 Firefox/129.0", MIMECAST, Machine, true, Animation),
    // --- HTTP libraries (matomo device-detector library fixtures) ---------------------------
    ("curl/7.21.0 (i386-redhat-linux-gnu) libcurl/7.21.0 NSS/3.12.10.0 zlib/1.2.5 libidn/1.18 libssh2/1.2.4", PERSON, Machine, true, Animation),
    ("Wget/1.11.4 Red Hat modified", PERSON, Machine, true, Animation),
    ("python-requests/1.2.0 CPython/2.7.3 Linux/3.8.0-33-generic", PERSON, Machine, true, Animation),
    ("Python-urllib/2.6", PERSON, Machine, true, Animation),
    ("Mozilla/5.0 (Python-urllib2)", PERSON, Machine, true, Animation),
    ("Java/1.7.0_51", PERSON, Machine, true, Animation),
    ("libwww-perl/5.69", PERSON, Machine, true, Animation),
    ("Guzzle/3.9.3 curl/7.38.0 PHP/5.6.14-0+deb8u1", PERSON, Machine, true, Animation),
    ("Mechanize/2.7.3 Ruby/1.9.3p551 (http://github.com/sparklemotion/mechanize/)", PERSON, Machine, true, Animation),
    ("Python/3.5 aiohttp/1.0.5", PERSON, Machine, true, Animation),
    ("Go-http-client/1.1", PERSON, Machine, true, Animation),
    ("Go-http-client/2.0", PERSON, Machine, true, Animation),
    // No User-Agent at all (every mail client sends one).
    ("", PERSON, Machine, true, Animation),
    // --- Outlook ----------------------------------------------------------------------------
    // Classic Outlook for Windows renders with Word: the first frame only (matomo
    // device-detector PIM fixtures; Litmus and Campaign Monitor on Outlook and animated GIFs).
    ("Microsoft Office/16.0 (Microsoft Outlook 16.0.12329; Pro), Mozilla/4.0 (compatible; ms-office; MSOffice 16)", PERSON, OutlookWord, false, FirstFrame),
    ("Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 6.1; Win64; x64; Trident/7.0; .NET CLR 2.0.50727; SLCC2; .NET CLR 3.5.30729; .NET CLR 3.0.30729; Media Center PC 6.0; .NET4.0C; InfoPath.3; .NET CLR 1.1.4322; FDM; Tablet PC 2.0; .NET4.0E; Microsoft Outlook 14.0.7113; ms-office; MSOffice 14)", PERSON, OutlookWord, false, FirstFrame),
    // Outlook 2016+ and its image prefetch form (ESP client reports).
    ("Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.15225; Pro)", PERSON, OutlookWord, false, FirstFrame),
    ("Mozilla/4.0 (compatible; ms-office; MSOffice 16)", PERSON, OutlookWord, false, FirstFrame),
    // Outlook for Mac, Outlook Express and the iOS app animate GIFs (device-detector PIM
    // fixtures).
    ("MacOutlook/16.46.21021202 (Intelx64 Mac OS X 11.2.2 (Build 20D80))", PERSON, Outlook, false, Animation),
    ("Outlook/16.16.18071205 CFNetwork/902.1 Darwin/17.7.0 (x86_64)", PERSON, Outlook, false, Animation),
    ("Outlook-Express/7.0 (MSIE 7.0; Windows NT 6.1; WOW64; Trident/6.0; SLCC2; .NET CLR 2.0.50727; .NET CLR 3.5.30729; .NET CLR 3.0.30729; Media Center PC 6.0; .NET4.0C; AskTbORJ/5.15.9.29495; .NET4.0E; TmstmpExt)", PERSON, Outlook, false, Animation),
    ("Outlook-iOS/709.2042344.prod.iphone (3.21.0)", PERSON, Outlook, false, Animation),
    // --- Mail apps (matomo device-detector PIM fixtures) ------------------------------------
    ("Mozilla/5.0 (X11; Linux i686; rv:17.0) Gecko/20130330 Thunderbird/17.0.5", PERSON, MailApp, false, Animation),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:24.0) Gecko/20100101 Thunderbird/24.4.0 Lightning/2.6.4", PERSON, MailApp, false, Animation),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:24.0) Gecko/20100101 Icedove/24.4.0", PERSON, MailApp, false, Animation),
    ("Airmail 1.4 rv:238 (Macintosh; Mac OS X 10.9.2; hr_HR)", PERSON, MailApp, false, Animation),
    ("Mozilla/5.0 (Macintosh; U; Intel Mac OS X 10.6; en-US; rv:1.9.1.8) Gecko/20100317 Postbox/1.1.3", PERSON, MailApp, false, Animation),
    ("The Bat! 4.0.0.22", PERSON, MailApp, false, Animation),
    ("Mozilla/4.0 (compatible; Lotus-Notes/6.0; Windows-NT)", PERSON, MailApp, false, Animation),
    ("WindowsMail/17.5.9600.22013", PERSON, MailApp, false, Animation),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/55.0.2883.87 Safari/537.36 eM Client/8.2.1659.0", PERSON, MailApp, false, Animation),
    ("eMClient/9.3.6041.0", PERSON, MailApp, false, Animation),
    ("Mozilla/5.0 (Windows NT 10.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/51.0.2704.103 Safari/537.36 Mailbird/2.4.30.0/", PERSON, MailApp, false, Animation),
    ("Mozilla/5.0 (Windows NT 6.2; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/101.0.4951.67 Safari/537.36 Foxmail/7.2.25.213", PERSON, MailApp, false, Animation),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) BlueMail/0.10.31 Chrome/61.0.3163.100 Electron/2.0.18 Safari/537.36", PERSON, MailApp, false, Animation),
    ("Mozilla/5.0 (Windows NT 10.0; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) Mailspring/1.7.4 Chrome/69.0.3497.128 Electron/4.2.2 Safari/537.36", PERSON, MailApp, false, Animation),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 15_3_1 like Mac OS X) AppleWebKit/534.46 (KHTML, like Gecko) Mobile/9B176 YJApp-IOS jp.co.yahoo.ymail/7.4.1", PERSON, MailApp, false, Animation),
    ("NaverMailApp/2.2.2 (Android 10; SM-G986N)", PERSON, MailApp, false, Animation),
    // --- Browsers (webmail) ----------------------------------------------------------------
    // Chrome's reduced User-Agent (Chromium "User-Agent Reduction"), Edge (Microsoft Edge docs),
    // Firefox and Chrome for Android (MDN "User-Agent" examples).
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36", PERSON, Browser, false, Animation),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0", PERSON, Browser, false, Animation),
    ("Mozilla/5.0 (Windows NT 6.1; Win64; x64; rv:47.0) Gecko/20100101 Firefox/47.0", PERSON, Browser, false, Animation),
    ("Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/143.0.0.0 Mobile Safari/537.36", PERSON, Browser, false, Animation),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/127.0.6533.107 Mobile/15E148 Safari/604.1", PERSON, Browser, false, Animation),
];

fn ip(text: &str) -> IpAddr {
    text.parse().expect("test address")
}

fn rules() -> ClientRules {
    let egress = AppleEgress::load(&apple_egress_fixture()).expect("test egress list");
    ClientRules::builtin().with_apple_egress(Some(Arc::new(egress)))
}

/// What the demo countdown sends `opener`: decided as the server decides it.
fn countdown_for(opener: &Opener, catalog: &Catalog, sources: &Sources) -> Shows {
    let (campaign, block) = catalog.find("demo", "countdown").expect("demo countdown");
    let at = utc("2026-11-25T14:32:15Z");
    let query = [("until".to_owned(), "2026-12-24T18:00:00+01:00".to_owned())].into();
    let input = TemplateInput::for_block(&block, &Default::default(), None, at, query);
    let decided = RenderInput::decide(&campaign, &block, Format::Gif, 1, input, opener, sources)
        .expect("a deadline");
    let request = decided.input.countdown.expect("a countdown request");
    match (request.ends.is_some(), request.first_frame_only) {
        (true, _) => Still,
        (false, true) => FirstFrame,
        (false, false) => Animation,
    }
}

#[test]
fn real_fetches_are_told_apart() {
    assert!(FETCHES.len() >= 60, "{} fetches", FETCHES.len());
    let rules = rules();
    let renderer = Arc::new(Renderer::load(&repo().join("assets")).expect("assets"));
    let (catalog, errors) = Catalog::load(&repo().join("templates"), renderer);
    assert!(errors.is_empty(), "{errors:?}");
    let sources = Sources::defaults().expect("sources");
    let mut wrong = Vec::new();
    for &(user_agent, address, kind, machine, shows) in FETCHES {
        let ua = (!user_agent.is_empty()).then_some(user_agent);
        let opener = Opener::of(ua, [], Some(ip(address)), 0, &rules);
        let got = (
            opener.client.kind,
            opener.client.machine,
            opener.is_person(),
            countdown_for(&opener, &catalog, &sources),
        );
        if got != (kind, machine, !machine, shows) {
            wrong.push(format!(
                "{user_agent:?} from {address}: got {got:?} by rule {}, want {:?}",
                opener.client.evidence,
                (kind, machine, shows)
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn every_rule_is_evidence_for_some_real_fetch() {
    // Each fetch names the rule that decided it; the table reaches the rules that matter.
    let rules = rules();
    let mut evidence: Vec<String> = FETCHES
        .iter()
        .map(|(ua, address, ..)| {
            let ua = (!ua.is_empty()).then_some(*ua);
            rules.classify(ua, Some(ip(address))).evidence.to_string()
        })
        .collect();
    evidence.sort();
    evidence.dedup();
    for rule in [
        "apple-mpp-user-agent",
        "apple-relay-egress",
        "gmail-prefetch",
        "edge-12-scanner",
        "gmail-image-proxy",
        "yahoo-mail-proxy",
        "office-link-probe",
        "link-preview",
        "security-scanner-network",
        "bot-or-library",
        "no-user-agent",
        "outlook-windows-word",
        "outlook-animating",
        "mail-app",
        "apple-mail",
        "browser",
    ] {
        assert!(evidence.iter().any(|e| e == rule), "{rule} in {evidence:?}");
    }
}
