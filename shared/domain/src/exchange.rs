//! RFC 8693 token exchange for agents, sans IO: the `act` chain, which scopes and audience a
//! delegated token may carry, and whether a client may act for an app's users.

use serde::{Deserialize, Serialize};

use super::scope::ScopeSet;

/// The scope a user grants an app so that the app's agents may act for them.
pub const AGENT_ACT: &str = "agent:act";

/// How many actors one token may name (`act` nested at most this deep).
pub const MAX_ACT_DEPTH: usize = 3;

/// The `act` claim (RFC 8693 §4.1): the current actor, and the one before it, if any.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Box<Actor>>,
}

impl Actor {
    /// How many actors the chain names.
    pub fn depth(&self) -> usize {
        1 + self.act.as_ref().map_or(0, |a| a.depth())
    }

    /// The actors, current first.
    pub fn chain(&self) -> Vec<&str> {
        let mut out = vec![self.sub.as_str()];
        let mut next = self.act.as_deref();
        while let Some(a) = next {
            out.push(a.sub.as_str());
            next = a.act.as_deref();
        }
        out
    }
}

/// Why an exchange is refused (each maps to an RFC 8693 §2.2.2 error).
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `invalid_request`: the subject token may not be delegated to this caller.
    NotDelegable(&'static str),
    /// `invalid_scope`.
    Scope(String),
}

/// The `act` claim of a token that `agent` obtains by exchanging a token whose own chain is
/// `previous` (none: a token the user's app holds).
pub fn delegate(previous: Option<&Actor>, agent: &str) -> Result<Actor, Refusal> {
    let next = Actor {
        sub: agent.to_string(),
        act: previous.cloned().map(Box::new),
    };
    if next.depth() > MAX_ACT_DEPTH {
        return Err(Refusal::NotDelegable(
            "the subject token has been delegated as many times as allowed",
        ));
    }
    Ok(next)
}

/// Whether `caller` may act for the users of `app`: it is the app itself, or registered as one
/// of its agents.
pub fn may_act_for(caller_id: &str, caller_agent_of: Option<&str>, app: &str) -> bool {
    caller_id == app || caller_agent_of == Some(app)
}

/// Whether a subject token may be exchanged at all: the user granted the app `agent:act`, and
/// a token the app holds itself (not yet delegated) carries it.
pub fn delegable(token_scope: &ScopeSet, grant_scope: &ScopeSet, delegated: bool) -> Result<(), Refusal> {
    if !grant_scope.contains(AGENT_ACT) || (!delegated && !token_scope.contains(AGENT_ACT)) {
        return Err(Refusal::NotDelegable(
            "the subject token does not allow agents to act (it lacks agent:act)",
        ));
    }
    Ok(())
}

/// The scopes of a delegated token: `requested` (none: all of them) within the subject token's
/// scopes, less `agent:act` (an agent cannot hand the right to delegate on), and within what
/// the agent may hold itself.
pub fn delegated_scope(
    requested: Option<&str>,
    subject: &ScopeSet,
    agent_allowed: &ScopeSet,
) -> Result<ScopeSet, Refusal> {
    let available = subject
        .clone()
        .retain(|s| s != AGENT_ACT && agent_allowed.contains(s));
    match requested {
        None => Ok(available),
        Some(r) => {
            let asked = ScopeSet::parse(r).map_err(Refusal::Scope)?;
            let outside = asked.difference(&available);
            if outside.is_empty() {
                Ok(asked)
            } else {
                Err(Refusal::Scope(format!(
                    "not available to this agent for this user: {}",
                    outside.join(" ")
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(s: &str) -> ScopeSet {
        ScopeSet::parse(s).unwrap()
    }

    #[test]
    fn act_nests_to_three() {
        let a = delegate(None, "A").unwrap();
        assert_eq!(serde_json::to_value(&a).unwrap(), serde_json::json!({"sub": "A"}));
        let b = delegate(Some(&a), "B").unwrap();
        assert_eq!(
            serde_json::to_value(&b).unwrap(),
            serde_json::json!({"sub": "B", "act": {"sub": "A"}})
        );
        let c = delegate(Some(&b), "C").unwrap();
        assert_eq!((c.depth(), c.chain()), (3, vec!["C", "B", "A"]));
        assert!(matches!(delegate(Some(&c), "D"), Err(Refusal::NotDelegable(_))));
    }

    #[test]
    fn who_may_act() {
        assert!(may_act_for("app", None, "app"));
        assert!(may_act_for("bot", Some("app"), "app"));
        assert!(!may_act_for("bot", Some("other"), "app"));
        assert!(!may_act_for("bot", None, "app"));
    }

    #[test]
    fn delegable_cases() {
        let with = set("api:read agent:act");
        let without = set("api:read");
        assert_eq!(delegable(&with, &with, false), Ok(()));
        assert!(delegable(&without, &with, false).is_err());
        // A delegated token never carries agent:act; the grant decides.
        assert_eq!(delegable(&without, &with, true), Ok(()));
        assert!(delegable(&with, &without, false).is_err());
        assert!(delegable(&without, &without, true).is_err());
    }

    #[test]
    fn scope_cases() {
        let subject = set("openid api:read api:write agent:act");
        let agent = set("api:read agent:act openid");
        let check = |req: Option<&str>, want: Result<&str, ()>| {
            let got = delegated_scope(req, &subject, &agent);
            match want {
                Ok(w) => assert_eq!(got.unwrap(), set(w), "{req:?}"),
                Err(()) => assert!(matches!(got, Err(Refusal::Scope(_))), "{req:?}"),
            }
        };
        check(None, Ok("openid api:read"));
        check(Some("api:read"), Ok("api:read"));
        check(Some("openid api:read"), Ok("openid api:read"));
        check(Some("api:write"), Err(()));
        check(Some("agent:act"), Err(()));
        check(Some("api:read api:admin"), Err(()));
        check(Some("bad\"scope"), Err(()));
        assert_eq!(delegated_scope(None, &set("agent:act"), &agent).unwrap(), set(""));
    }
}
