//! A vote: `/vote/{campaign}/{poll}/{option}?s=…&t=…`. The token is checked (tokens before
//! anything is written), the vote recorded and counted in the store (`crate::tally`: one vote
//! per subscriber, or the latest when the poll allows changing it), written into the
//! subscriber's `polls` context field and the event stream, and the voter sent to the poll's
//! thank-you link. A machine following every link (a scanner) is sent there too, but its
//! "vote" is neither counted nor recorded.

use super::opener::Opener;
use super::{query, verify, Pipeline};
use crate::context::SubscriberId;
use crate::events::{Event, EventKind};
use crate::tally::{Vote, VoteOutcome};

/// Why a vote URL is wrong (a 4xx with this reason).
#[derive(Debug, thiserror::Error)]
pub enum VoteError {
    #[error("no such campaign, poll or option")]
    NotFound,
    #[error("bad query: {0}")]
    BadQuery(String),
    #[error("missing or wrong subscriber or token")]
    BadToken,
    #[error("the vote could not be stored: {0}")]
    Store(String),
}

/// What a vote came to, and where the voter goes next.
#[derive(Debug)]
pub struct Voted {
    pub outcome: Option<VoteOutcome>,
    pub thank_you: String,
}

impl Pipeline {
    pub async fn vote(
        &self,
        campaign: &str,
        poll: &str,
        option: &str,
        raw_query: Option<&str>,
        opener: &Opener,
    ) -> Result<Voted, VoteError> {
        let campaign = self.catalog.campaign(campaign).ok_or(VoteError::NotFound)?;
        let poll = campaign.poll(poll).cloned().ok_or(VoteError::NotFound)?;
        if !poll.has_option(option) {
            return Err(VoteError::NotFound);
        }
        let query = query::parse(raw_query).map_err(|e| VoteError::BadQuery(e.to_string()))?;
        let subscriber = verify::named_subscriber(
            &self.signer,
            query.subscriber.as_deref(),
            query.token.as_deref(),
        )
        .flatten()
        .ok_or(VoteError::BadToken)?;
        let thank_you = poll.thank_you(option);
        if !opener.is_person() {
            return Ok(Voted {
                outcome: None,
                thank_you,
            });
        }
        let vote = Vote {
            subscriber: &subscriber,
            campaign: &campaign.name,
            poll: &poll.name,
            option,
            change: poll.change,
        };
        let outcome = tokio::time::timeout(self.limits.store_timeout * 4, self.tallies.vote(&vote))
            .await
            .map_err(|_| VoteError::Store("timeout".into()))?
            .map_err(|e| VoteError::Store(e.to_string()))?;
        self.record_vote(
            &campaign.name,
            &poll.name,
            option,
            &subscriber,
            opener,
            &outcome,
        );
        Ok(Voted {
            outcome: Some(outcome),
            thank_you,
        })
    }

    fn record_vote(
        &self,
        campaign: &str,
        poll: &str,
        option: &str,
        subscriber: &SubscriberId,
        opener: &Opener,
        outcome: &VoteOutcome,
    ) {
        let mut event = Event::now(
            EventKind::Vote,
            campaign,
            poll,
            Some(subscriber.as_str()),
            &opener.recorded_client(),
        );
        event.option = Some(option.to_owned());
        event.counted = Some(matches!(
            outcome,
            VoteOutcome::Counted | VoteOutcome::Changed { .. }
        ));
        self.events.record(event);
    }
}
