//! `slice` images whose picture fills their slot exactly, on whole pixels, drawn without a clip.
//!
//! usvg turns every `<image preserveAspectRatio="… slice">` into a group clipped to the image's
//! rectangle, and resvg draws such a group as a layer of its own and a mask: for the demo cart's
//! three photos that was about 15% of a render with every text and row kept. The product photos
//! and shipped images a template draws arrive already cropped to their slot's pixel size
//! (`Fit::Cover`, see [`super::image_slots`]), so the crop the clip would make is empty. When the
//! slot also lies on whole pixels the clip's mask is 255 inside and 0 outside, and drawing the
//! picture `meet` instead gives the same pixels without the layer (a unit test compares them).
//!
//! The attribute is rewritten in place to the same length (`slice` → `meet `, which usvg reads
//! as `meet`), so the byte ranges of the document parsed from the original stay valid for the
//! text tiles and runs that rewrite the same SVG after this.

use super::image_slots::{href, length, own_size};
use std::borrow::Cow;

/// How far from a whole pixel an edge may be and still count as on it (floating-point noise of
/// `x × scale`).
const ON_PIXEL: f64 = 1e-4;

/// `svg` with the `slice` of each top-level `<image>` that `picture_size` says fills its slot
/// exactly turned into `meet`; borrowed unchanged when there is none. `document` is `svg`
/// parsed; the SVG is drawn at `pixel_width`×`pixel_height`; `picture_size` gives the pixel size
/// of the picture an `href` resolves to, when it is known.
pub(crate) fn unclip_exact_slices<'s>(
    svg: &'s str,
    document: &roxmltree::Document<'_>,
    pixel_width: u32,
    pixel_height: u32,
    picture_size: impl Fn(&str) -> Option<(u32, u32)>,
) -> Cow<'s, str> {
    if !svg.contains("slice") {
        return Cow::Borrowed(svg);
    }
    let root = document.root_element();
    let Some((sx, sy)) = root_scale(&root, pixel_width, pixel_height) else {
        return Cow::Borrowed(svg);
    };
    let mut rewrites = Vec::new();
    for image in root.children().filter(|n| n.has_tag_name("image")) {
        let Some(attribute) = image.attribute_node("preserveAspectRatio") else {
            continue;
        };
        // Found as written, so the offset holds whatever entities the value uses.
        let written = &svg[attribute.range_value()];
        let Some(slice_at) = written.find("slice") else {
            continue;
        };
        // The slot's geometry first: the picture's size is read from its bytes.
        let fills = slot_pixels(&image, sx, sy)
            .is_some_and(|slot| href(&image).and_then(&picture_size) == Some(slot));
        if fills {
            rewrites.push(attribute.range_value().start + slice_at);
        }
    }
    if rewrites.is_empty() {
        return Cow::Borrowed(svg);
    }
    let mut out = String::with_capacity(svg.len());
    let mut copied_to = 0;
    for at in rewrites {
        out.push_str(&svg[copied_to..at]);
        out.push_str("meet ");
        copied_to = at + "slice".len();
    }
    out.push_str(&svg[copied_to..]);
    Cow::Owned(out)
}

/// Pixels per user unit of the root `<svg>` drawn at `pixel_width`×`pixel_height`, when both
/// axes scale alike and its `viewBox`, if any, starts at the origin with its own size.
fn root_scale(
    root: &roxmltree::Node<'_, '_>,
    pixel_width: u32,
    pixel_height: u32,
) -> Option<(f64, f64)> {
    if root.has_attribute("transform") {
        return None;
    }
    let (width, height) = own_size(root)?;
    let (sx, sy) = (
        f64::from(pixel_width) / width,
        f64::from(pixel_height) / height,
    );
    // Unlike axes would make the slot's aspect differ from a picture of its pixel size.
    ((sx - sy).abs() < 1e-9).then_some((sx, sy))
}

/// The pixel size of `image`'s rectangle when all its edges lie on whole pixels and nothing
/// but the root's scale moves it.
fn slot_pixels(image: &roxmltree::Node<'_, '_>, sx: f64, sy: f64) -> Option<(u32, u32)> {
    if image.has_attribute("transform") {
        return None;
    }
    let position = |name| match image.attribute(name) {
        None => Some(0.0),
        value => length(value),
    };
    let (x, y) = (position("x")?, position("y")?);
    let (width, height) = (
        length(image.attribute("width"))?,
        length(image.attribute("height"))?,
    );
    let edges = [x * sx, y * sy, (x + width) * sx, (y + height) * sy].map(on_pixel);
    let [Some(left), Some(top), Some(right), Some(bottom)] = edges else {
        return None;
    };
    let size = (right.checked_sub(left)?, bottom.checked_sub(top)?);
    (size.0 > 0 && size.1 > 0).then_some(size)
}

/// `value` as a whole pixel, when it is one.
fn on_pixel(value: f64) -> Option<u32> {
    let rounded = value.round();
    ((value - rounded).abs() < ON_PIXEL && (0.0..=f64::from(u32::MAX)).contains(&rounded))
        .then_some(rounded as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svg_with(image: &str) -> String {
        format!(
            r##"<svg xmlns="http://www.w3.org/2000/svg" width="100" height="50" viewBox="0 0 100 50"><rect width="100" height="50" fill="#fff"/>{image}</svg>"##
        )
    }

    fn rewritten(svg: &str, pixel_width: u32, picture: (u32, u32)) -> String {
        let document = roxmltree::Document::parse(svg).unwrap();
        unclip_exact_slices(svg, &document, pixel_width, pixel_width / 2, |href| {
            (href == "asset:photo.png").then_some(picture)
        })
        .into_owned()
    }

    #[test]
    fn a_picture_filling_its_slot_on_whole_pixels_loses_the_slice() {
        let image = r#"<image href="asset:photo.png" x="10" y="5" width="44" height="40" preserveAspectRatio="xMidYMid slice"/>"#;
        let svg = svg_with(image);
        let out = rewritten(&svg, 100, (44, 40));
        assert_eq!(out.len(), svg.len());
        assert!(
            out.contains(r#"preserveAspectRatio="xMidYMid meet ""#),
            "{out}"
        );
        // At scale 2 the slot is 88×80 pixels: a 44×40 picture does not fill it.
        assert_eq!(rewritten(&svg, 200, (44, 40)), svg);
        assert!(rewritten(&svg, 200, (88, 80)).contains("meet "));
    }

    #[test]
    fn anything_else_keeps_its_slice() {
        let cases = [
            // Not on whole pixels.
            r#"<image href="asset:photo.png" x="10.5" y="5" width="44" height="40" preserveAspectRatio="xMidYMid slice"/>"#,
            // The picture is another size (its crop would cut).
            r#"<image href="asset:photo.png" x="10" y="5" width="40" height="40" preserveAspectRatio="xMidYMid slice"/>"#,
            // Another picture, of unknown size.
            r#"<image href="asset:other.png" x="10" y="5" width="44" height="40" preserveAspectRatio="xMidYMid slice"/>"#,
            // Moved by a transform of its own or inside a group.
            r#"<image href="asset:photo.png" x="10" y="5" width="44" height="40" transform="rotate(3)" preserveAspectRatio="xMidYMid slice"/>"#,
            r#"<g transform="translate(0.5 0)"><image href="asset:photo.png" x="10" y="5" width="44" height="40" preserveAspectRatio="xMidYMid slice"/></g>"#,
        ];
        for image in cases {
            let svg = svg_with(image);
            assert_eq!(rewritten(&svg, 100, (44, 40)), svg, "{image}");
        }
        // A root stretched unevenly: the slot's aspect is not the picture's.
        let svg = svg_with(
            r#"<image href="asset:photo.png" x="10" y="5" width="44" height="40" preserveAspectRatio="xMidYMid slice"/>"#,
        );
        let document = roxmltree::Document::parse(&svg).unwrap();
        let out = unclip_exact_slices(&svg, &document, 100, 100, |_| Some((44, 80)));
        assert_eq!(out, svg);
    }
}
