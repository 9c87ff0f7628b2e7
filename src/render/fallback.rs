//! A block's fallback: what an opener sees whenever the live render cannot be served.
//! Prepared once when the campaign loads, so serving it costs nothing and cannot fail.

use super::png::{self, transparent_png};
use super::svg::Rasterizer;
use super::RenderError;
use bytes::Bytes;

/// A 1×1 GIF89a whose only pixel is transparent (43 bytes): the pixel of GIF routes.
pub const TRANSPARENT_GIF: [u8; 43] = [
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

#[derive(Debug, Clone)]
pub struct Fallback {
    /// The image at the block's declared size.
    pub image: Bytes,
    /// The image at twice the size, for `scale=2` (the same bytes for PNG/GIF files).
    pub image_2x: Bytes,
    pub content_type: &'static str,
    /// The HTML fragment fallback (may be empty).
    pub html: Bytes,
}

impl Fallback {
    pub fn image_for_scale(&self, scale: u8) -> &Bytes {
        if scale >= 2 {
            &self.image_2x
        } else {
            &self.image
        }
    }
}

pub(crate) fn prepare(
    rasterizer: &Rasterizer,
    image: Option<(&str, Vec<u8>)>,
    width: u32,
    height: u32,
    html: String,
) -> Result<Fallback, RenderError> {
    let (width, height) = (width.max(1), height.max(1));
    let (image, image_2x, content_type) = match image {
        Some((name, bytes)) if name.ends_with(".svg") => {
            let svg = String::from_utf8(bytes)
                .map_err(|_| RenderError::Svg(format!("{name} is not UTF-8")))?;
            let one = png::encode(&rasterizer.rasterize(&svg, width, height, 1)?)?;
            let two = png::encode(&rasterizer.rasterize(&svg, width, height, 2)?)?;
            (Bytes::from(one), Bytes::from(two), "image/png")
        }
        Some((name, bytes)) => {
            let content_type = match bytes.as_slice() {
                [0x89, b'P', b'N', b'G', ..] => "image/png",
                [b'G', b'I', b'F', b'8', ..] => "image/gif",
                _ => {
                    return Err(RenderError::Assets(format!(
                        "{name}: fallback images are SVG, PNG or GIF"
                    )))
                }
            };
            let bytes = Bytes::from(bytes);
            (bytes.clone(), bytes, content_type)
        }
        None => {
            let one = transparent_png(width, height)?;
            let two = transparent_png(width * 2, height * 2)?;
            (one, two, "image/png")
        }
    };
    Ok(Fallback {
        image,
        image_2x,
        content_type,
        html: Bytes::from(html),
    })
}
