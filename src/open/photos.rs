//! The product photos of one render: every remote `<image>` slot fetched at once through
//! [`ProductPhotos`] (allow-list, byte cap, cache, single flight) within the open's deadline.
//! A photo that cannot be had becomes the slot's placeholder, never an error.

use crate::render::image_slots::{FetchedImages, ImageSlot, SlotFailure, MAX_REMOTE_IMAGES};
use crate::sources::product_photos::{FetchError, ProductPhotos};
use tokio::time::Instant;

/// Fetches every slot at once; stops waiting at `deadline`. A fetch still running then
/// goes on in the background and fills the image cache for the next open.
pub(crate) async fn fetch(
    photos: &ProductPhotos,
    slots: Vec<ImageSlot>,
    deadline: Instant,
) -> FetchedImages {
    let mut fetched = FetchedImages::default();
    let mut pending = Vec::new();
    for (index, slot) in slots.into_iter().enumerate() {
        if index >= MAX_REMOTE_IMAGES {
            fetched.fail(&slot, SlotFailure::TooMany);
            continue;
        }
        let photos = photos.clone();
        let (href, width, height, fit) = (slot.href.clone(), slot.width, slot.height, slot.fit);
        let task = tokio::spawn(async move { photos.get(&href, width, height, fit).await });
        pending.push((slot, task));
    }
    for (slot, task) in pending {
        match tokio::time::timeout_at(deadline, task).await {
            Ok(Ok(Ok(image))) => {
                fetched.insert(&slot, image.png.to_vec());
            }
            Ok(Ok(Err(error))) => fetched.fail(&slot, SlotFailure::Fetch(error)),
            Ok(Err(_)) => fetched.fail(&slot, SlotFailure::Fetch(FetchError::Internal)),
            Err(_) => fetched.fail(&slot, SlotFailure::Deadline),
        }
    }
    for (href, failure) in fetched.failures() {
        tracing::debug!(href = %href, reason = failure.reason(), "product photo placeholder");
    }
    fetched
}
