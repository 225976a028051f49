//! Group commit for the writer tasks: after the first message of a quiet
//! period, take what is already queued, then (unless the batch must go out
//! now) wait one batch window and take what arrived meanwhile. The channel
//! is not polled during the window, so senders do not wake the writer once
//! per message; under load one transaction carries hundreds of rows.

use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;

/// Feeds `first` and then queued messages to `add`, which returns true
/// when the batch must be written at once (full, or a flush is waiting).
/// Messages after that point stay queued for the next batch.
pub(crate) async fn gather<M>(
    rx: &mut UnboundedReceiver<M>,
    first: M,
    window: Duration,
    mut add: impl FnMut(M) -> bool,
) {
    if take_queued(rx, first, &mut add) || window.is_zero() {
        return;
    }
    tokio::time::sleep(window).await;
    if let Ok(next) = rx.try_recv() {
        take_queued(rx, next, &mut add);
    }
}

/// `add`s `first` and what is queued until `add` says stop; whether it did.
fn take_queued<M>(
    rx: &mut UnboundedReceiver<M>,
    first: M,
    add: &mut impl FnMut(M) -> bool,
) -> bool {
    let mut msg = first;
    loop {
        if add(msg) {
            return true;
        }
        match rx.try_recv() {
            Ok(m) => msg = m,
            Err(_) => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;

    #[tokio::test(start_paused = true)]
    async fn messages_sent_during_the_window_join_the_batch() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        tx.send(2).unwrap();
        let late = tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            late.send(3).unwrap();
        });
        let mut got = Vec::new();
        gather(&mut rx, 1, Duration::from_millis(20), |m| {
            got.push(m);
            false
        })
        .await;
        assert_eq!(got, [1, 2, 3]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_batch_goes_out_at_once_and_leaves_the_rest_queued() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        for m in 2..=5 {
            tx.send(m).unwrap();
        }
        let mut got = Vec::new();
        gather(&mut rx, 1, Duration::from_secs(3600), |m| {
            got.push(m);
            got.len() >= 3
        })
        .await;
        assert_eq!(got, [1, 2, 3]);
        assert_eq!(rx.try_recv().ok(), Some(4));
    }
}
