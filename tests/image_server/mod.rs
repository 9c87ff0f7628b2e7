//! A local HTTP image server for the remote-image tests: serves test photos in every
//! format plus the bad cases (huge, slow, stalled, redirects, non-images, 404), and
//! counts the requests it gets per path. Binds 127.0.0.1 on an ephemeral port, so
//! tests run in parallel without interfering.

#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::Cursor;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use image::{ImageFormat, Rgba, RgbaImage};
use tokio::net::TcpListener;

pub const RED: [u8; 4] = [255, 0, 0, 255];
pub const BLUE: [u8; 4] = [0, 0, 255, 255];

/// A 64×32 test photo: left half red, right half blue.
pub fn test_picture() -> RgbaImage {
    RgbaImage::from_fn(64, 32, |x, _| if x < 32 { Rgba(RED) } else { Rgba(BLUE) })
}

/// The test photo encoded as `format` (WebP lossless, JPEG at the encoder's default).
pub fn encoded(format: ImageFormat) -> Vec<u8> {
    let picture = test_picture();
    let mut out = Vec::new();
    match format {
        ImageFormat::Jpeg => image::DynamicImage::ImageRgba8(picture)
            .into_rgb8()
            .write_to(&mut Cursor::new(&mut out), format),
        _ => picture.write_to(&mut Cursor::new(&mut out), format),
    }
    .expect("encode test picture");
    out
}

/// The running server.
pub struct ImageServer {
    pub addr: SocketAddr,
    hits: Arc<Mutex<HashMap<String, usize>>>,
}

impl ImageServer {
    /// Starts a server; `/redirect-away` points at `redirect_away` (a full URL).
    pub async fn start(redirect_away: Option<String>) -> Self {
        Self::start_with(redirect_away, Vec::new()).await
    }

    /// [`Self::start`], also serving each `(path, PNG bytes)` of `extra` as `image/png`.
    pub async fn start_with(redirect_away: Option<String>, extra: Vec<(&str, Vec<u8>)>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let hits: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let state = Arc::new(State {
            hits: Arc::clone(&hits),
            redirect_away,
            jpeg: Bytes::from(encoded(ImageFormat::Jpeg)),
            png: Bytes::from(encoded(ImageFormat::Png)),
            webp: Bytes::from(encoded(ImageFormat::WebP)),
            gif: Bytes::from(encoded(ImageFormat::Gif)),
            extra: extra
                .into_iter()
                .map(|(path, bytes)| (path.to_owned(), Bytes::from(bytes)))
                .collect(),
        });
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let state = Arc::clone(&state);
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let state = Arc::clone(&state);
                        async move { Ok::<_, Infallible>(state.answer(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, hits }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Requests seen for `path`.
    pub fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    /// Requests seen in all.
    pub fn total_hits(&self) -> usize {
        self.hits.lock().unwrap().values().sum()
    }
}

struct State {
    hits: Arc<Mutex<HashMap<String, usize>>>,
    redirect_away: Option<String>,
    jpeg: Bytes,
    png: Bytes,
    webp: Bytes,
    gif: Bytes,
    /// Further PNG files, by path.
    extra: HashMap<String, Bytes>,
}

type Answer = Response<BoxBody<Bytes, Infallible>>;

fn full(status: StatusCode, content_type: &str, body: Bytes) -> Answer {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(body).boxed())
        .unwrap()
}

fn redirect(location: &str) -> Answer {
    Response::builder()
        .status(StatusCode::FOUND)
        .header("location", location)
        .body(Full::new(Bytes::new()).boxed())
        .unwrap()
}

impl State {
    async fn answer(&self, req: Request<Incoming>) -> Answer {
        let path = req.uri().path().to_owned();
        *self.hits.lock().unwrap().entry(path.clone()).or_default() += 1;
        if let Some(bytes) = self.extra.get(&path) {
            return full(StatusCode::OK, "image/png", bytes.clone());
        }
        match path.as_str() {
            "/photo.jpg" => full(StatusCode::OK, "image/jpeg", self.jpeg.clone()),
            "/photo.png" => full(StatusCode::OK, "image/png", self.png.clone()),
            "/photo.webp" => full(StatusCode::OK, "image/webp", self.webp.clone()),
            "/photo.gif" => full(StatusCode::OK, "image/gif", self.gif.clone()),
            "/mislabeled" => full(StatusCode::OK, "application/octet-stream", self.png.clone()),
            "/shared.jpg" => {
                // Slow enough that 50 concurrent renders all arrive while it is in flight.
                tokio::time::sleep(Duration::from_millis(300)).await;
                full(StatusCode::OK, "image/jpeg", self.jpeg.clone())
            }
            // 2 MiB with a Content-Length.
            "/huge.jpg" => full(
                StatusCode::OK,
                "image/jpeg",
                Bytes::from(vec![0u8; 2 << 20]),
            ),
            // 2 MiB chunked, with no Content-Length: the cap must hold while streaming.
            "/huge-chunked.jpg" => Response::builder()
                .header("content-type", "image/jpeg")
                .body(
                    Chunks {
                        left: 32,
                        chunk: Bytes::from(vec![0u8; 64 << 10]),
                    }
                    .boxed(),
                )
                .unwrap(),
            // Headers only after 5 s.
            "/slow.jpg" => {
                tokio::time::sleep(Duration::from_secs(5)).await;
                full(StatusCode::OK, "image/jpeg", self.jpeg.clone())
            }
            // Headers and a first chunk at once, then nothing, ever.
            "/stalled.jpg" => Response::builder()
                .header("content-type", "image/jpeg")
                .body(
                    Stall {
                        first: Some(self.jpeg.slice(..100)),
                    }
                    .boxed(),
                )
                .unwrap(),
            "/redirect-away" => match &self.redirect_away {
                Some(location) => redirect(location),
                None => full(StatusCode::NOT_FOUND, "text/plain", Bytes::new()),
            },
            "/redirect-ok" => redirect("/photo.png"),
            "/redirect-loop" => redirect("/redirect-loop"),
            "/page.html" => full(
                StatusCode::OK,
                "text/html; charset=utf-8",
                Bytes::from_static(b"<html><body>not a picture</body></html>"),
            ),
            "/garbage.jpg" => full(
                StatusCode::OK,
                "image/jpeg",
                Bytes::from_static(b"definitely not a jpeg, just some bytes"),
            ),
            _ => full(
                StatusCode::NOT_FOUND,
                "text/plain",
                Bytes::from_static(b"no"),
            ),
        }
    }
}

/// A body of `left` equal chunks with no known length (sent chunked).
struct Chunks {
    left: usize,
    chunk: Bytes,
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        self.left -= 1;
        Poll::Ready(Some(Ok(Frame::data(self.chunk.clone()))))
    }
}

/// A body that sends one chunk and then never another.
struct Stall {
    first: Option<Bytes>,
}

impl Body for Stall {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.first.take() {
            Some(chunk) => Poll::Ready(Some(Ok(Frame::data(chunk)))),
            None => Poll::Pending,
        }
    }
}
