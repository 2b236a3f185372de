//! How old an interaction is, and what that allows. Discord takes the first answer to an
//! interaction only within 3 s of creating it (after that every callback gets 10062 "Unknown
//! interaction"), and its ID is a snowflake that carries that creation time. The clock that
//! counts is Discord's, so the age is measured from the ID, not from when the event reached
//! opsgate (gateway lag and a busy handler both eat into the 3 s).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Discord's window for the first answer to an interaction.
pub const WINDOW: Duration = Duration::from_secs(3);

/// Milliseconds from the Unix epoch to Discord's epoch (2015-01-01), the zero of snowflakes.
const DISCORD_EPOCH_MS: u64 = 1_420_070_400_000;

/// When Discord created the object with this snowflake ID, in Unix milliseconds.
pub fn created_ms(id: u64) -> u64 {
    (id >> 22) + DISCORD_EPOCH_MS
}

/// How long ago Discord created `id`, by this host's clock (zero for a time in the future:
/// a clock behind Discord's only makes interactions look younger).
pub fn age(id: u64, now_ms: u64) -> Duration {
    Duration::from_millis(now_ms.saturating_sub(created_ms(id)))
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// True once Discord no longer takes a first answer: answering would be answering as if
/// fresh a user who was already shown "The application did not respond".
pub fn is_stale(age: Duration) -> bool {
    age >= WINDOW
}

/// How long from now until `at` after creation (zero when that moment has passed).
pub fn until(age: Duration, at: Duration) -> Duration {
    at.saturating_sub(age)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A snowflake for `ms` (Unix milliseconds), as Discord makes them.
    fn snowflake(ms: u64) -> u64 {
        ((ms - DISCORD_EPOCH_MS) << 22) | 0x1_0007
    }

    #[test]
    fn the_age_comes_from_the_id() {
        let now = 1_780_000_000_000;
        assert_eq!(created_ms(snowflake(now)), now);
        assert_eq!(
            age(snowflake(now - 2_500), now),
            Duration::from_millis(2_500)
        );
        // Discord's documented example: 175928847299117063 was made at 1462015105796.
        assert_eq!(created_ms(175_928_847_299_117_063), 1_462_015_105_796);
        // A clock behind Discord's: the interaction is not older than zero.
        assert_eq!(age(snowflake(now + 700), now), Duration::ZERO);
    }

    #[test]
    fn stale_after_discords_window_and_deferral_counts_from_creation() {
        assert!(!is_stale(Duration::from_millis(2_999)));
        assert!(is_stale(WINDOW));
        let at = Duration::from_millis(1_500);
        assert_eq!(
            until(Duration::from_millis(200), at),
            Duration::from_millis(1_300)
        );
        assert_eq!(until(Duration::from_millis(2_000), at), Duration::ZERO);
    }
}
