//! Batches made ahead of the step that takes them, on a thread of their own: while the device
//! runs one step (or the host waits for its losses, or the CPU executor computes it), the next
//! batches are decoded, augmented and normalised. A streamed image folder's decoding is then off
//! the step's critical path whenever it takes less time than a step.

use std::sync::mpsc;

use super::{Dataset, Transform};
use crate::{RuntimeError, Tensor};

/// How many batches are made ahead of the one being used: enough to cover a loss read-back, few
/// enough that a large image batch (`[64, 3, 224, 224]` floats is 38.5 MB) is not held many times.
pub const DEPTH: usize = 2;

/// One batch as [`Dataset::batch`] makes it: floats `[n, C, H, W]` and a label per item.
pub type Batch = Result<(Tensor, Vec<usize>), RuntimeError>;

/// [`prefetch_with`] making each batch with [`Dataset::batch`]: `(first, indices)` of `plan` is
/// `dataset.batch(indices, transform, key, first)`.
///
/// # Panics
/// Where [`Dataset::batch`] panics (an index out of range), on the calling thread.
pub fn prefetch<R>(
    dataset: &Dataset,
    transform: &Transform,
    key: u32,
    plan: &[(usize, &[usize])],
    consume: impl FnOnce(&mut dyn Iterator<Item = Batch>) -> R,
) -> R {
    prefetch_with(plan, |first, indices| dataset.batch(indices, transform, key, first), consume)
}

/// Runs `consume` on `make(first, indices)` for each `(first, indices)` of `plan`, in order. They
/// are made on a thread of their own, at most [`DEPTH`] ahead of `consume`; when `consume` returns
/// early, making them stops at the one under way. The same values come out as made one by one, so
/// results do not depend on the thread.
///
/// # Panics
/// Where `make` panics, on the calling thread.
pub fn prefetch_with<T: Send, R>(
    plan: &[(usize, &[usize])],
    make: impl Fn(usize, &[usize]) -> T + Sync,
    consume: impl FnOnce(&mut dyn Iterator<Item = T>) -> R,
) -> R {
    std::thread::scope(|scope| {
        let (sender, receiver) = mpsc::sync_channel::<T>(DEPTH.saturating_sub(1));
        let make = &make;
        let maker = std::thread::Builder::new()
            .name("cnnc-batches".into())
            .spawn_scoped(scope, move || {
                for (first, indices) in plan {
                    // The receiver is gone when `consume` returned early: stop.
                    if sender.send(make(*first, indices)).is_err() {
                        return;
                    }
                }
            })
            .expect("spawning a thread to make batches");
        let mut made = Received { receiver: Some(receiver), maker: Some(maker) };
        let result = consume(&mut made);
        made.finish();
        result
    })
}

/// The batches as they arrive; a panic of the maker is raised here rather than ending the batches
/// early, which would silently shorten an epoch.
struct Received<'scope, T> {
    receiver: Option<mpsc::Receiver<T>>,
    maker: Option<std::thread::ScopedJoinHandle<'scope, ()>>,
}

impl<T> Received<'_, T> {
    /// Stops the maker (its next send fails) and waits for it, raising its panic.
    fn finish(&mut self) {
        self.receiver = None;
        if let Some(maker) = self.maker.take() {
            if let Err(panic) = maker.join() {
                std::panic::resume_unwind(panic);
            }
        }
    }
}

impl<T> Iterator for Received<'_, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        match self.receiver.as_ref()?.recv() {
            Ok(batch) => Some(batch),
            Err(mpsc::RecvError) => {
                self.finish();
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Augment, Images};

    fn digits(n: usize) -> Dataset {
        let bytes = (0..n * 4).map(|i| (i * 37 % 256) as u8).collect();
        Dataset::from_memory(Images::Same { bytes, shape: [1, 2, 2] }, (0..n as u32).map(|l| l % 3).collect(), "digits")
    }

    fn transform() -> Transform {
        Transform {
            input: [1, 2, 2],
            augment: vec![Augment::HorizontalFlip],
            resize: None,
            centre_crop: false,
            mean: vec![0.5],
            std: vec![0.25],
        }
    }

    #[test]
    fn prefetched_batches_are_the_batches_made_one_by_one() {
        let data = digits(40);
        let order: Vec<usize> = (0..40).rev().collect();
        let plan: Vec<(usize, &[usize])> = order.chunks_exact(8).enumerate().map(|(i, c)| (i * 8, c)).collect();
        let t = transform();
        let made: Vec<(Tensor, Vec<usize>)> =
            prefetch(&data, &t, 7, &plan, |batches| batches.map(Result::unwrap).collect());
        assert_eq!(made.len(), 5);
        for ((first, chunk), (x, labels)) in plan.iter().zip(&made) {
            let (want_x, want_labels) = data.batch(chunk, &t, 7, *first).unwrap();
            assert_eq!((&x.shape, &x.data, labels), (&want_x.shape, &want_x.data, &want_labels));
        }
    }

    #[test]
    fn stopping_early_stops_the_maker() {
        let data = digits(400);
        let order: Vec<usize> = (0..400).collect();
        let plan: Vec<(usize, &[usize])> = order.chunks_exact(4).enumerate().map(|(i, c)| (i * 4, c)).collect();
        let taken = prefetch(&data, &transform(), 0, &plan, |batches| batches.take(3).count());
        assert_eq!(taken, 3);
    }

    #[test]
    #[should_panic(expected = "out of range")]
    fn a_panic_while_making_a_batch_is_raised_not_swallowed() {
        let data = digits(8);
        let bad = [0usize, 99];
        let plan: Vec<(usize, &[usize])> = vec![(0, &bad[..])];
        prefetch(&data, &transform(), 0, &plan, |batches| batches.count());
    }
}
