//! Legal holds: placed and released by admins, listed for auditors, each change audited first.

use std::collections::BTreeMap;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use corral_schema::Timestamp;

use super::{ApiError, ApiState, Identity, json};
use crate::audit::Entry;
use crate::auth::{Caller, Role};
use crate::holds::NewHold;

/// Places a legal hold (admin).
pub(super) async fn create_hold(State(state): State<ApiState>, identity: Identity, body: Bytes) -> Response {
    let started = Instant::now();
    let caller = match state.authorize(identity, Role::Admin, "place legal holds", "hold.create", || {
        BTreeMap::from([(
            "body".to_owned(),
            String::from_utf8_lossy(&body[..body.len().min(4096)]).into_owned(),
        )])
    }) {
        Ok(caller) => caller,
        Err(response) => return *response,
    };
    let bad = |message: String| {
        state.refuse(
            Some(&caller),
            "hold.create",
            BTreeMap::from([(
                "body".to_owned(),
                String::from_utf8_lossy(&body[..body.len().min(4096)]).into_owned(),
            )]),
            ApiError::BadRequest(message),
        )
    };
    let new = match NewHold::parse(&body) {
        Ok(new) => new,
        Err(message) => return bad(message),
    };
    if let Some(q) = &new.selector.q
        && let Err(e) = state.engine.check_query(q)
    {
        return bad(format!("invalid hold: selector {}", e.0));
    }
    if let Some(scope) = &caller.namespaces
        && !new
            .selector
            .namespace
            .as_deref()
            .is_some_and(|ns| scope.allows(ns))
    {
        return state.refuse(
            Some(&caller),
            "hold.create",
            BTreeMap::from([(
                "body".to_owned(),
                String::from_utf8_lossy(&body[..body.len().min(4096)]).into_owned(),
            )]),
            ApiError::Forbidden(format!(
                "{} is scoped to namespaces {:?}: its holds must select one of them (selector \"namespace\")",
                caller.name,
                scope.patterns()
            )),
        );
    }
    // The entry is written under the holds' lock before the hold exists: a hold the audit log
    // does not show placed never takes effect.
    let created = tokio::task::block_in_place(|| {
        state.holds.create_audited(new, &caller.name, |hold| {
            let mut params = std::collections::BTreeMap::from([
                ("id".to_owned(), hold.id.clone()),
                ("reason".to_owned(), hold.reason.clone()),
            ]);
            params.insert(
                "selector".to_owned(),
                serde_json::to_string(&hold.selector).expect("serializes"),
            );
            state
                .audit
                .append(hold_entry(&caller, "hold.create", params, started))
                .map(|_| ())
        })
    });
    match created {
        Ok(hold) => (
            StatusCode::CREATED,
            json(serde_json::json!({"id": hold.id}).to_string()),
        )
            .into_response(),
        Err(e) => hold_change_failed(&state, &caller, "hold.create", &e),
    }
}

/// True when `caller` may see and change `hold`: it sees every namespace, or the hold selects
/// one of its scope.
fn in_scope(caller: &Caller, hold: &crate::holds::Hold) -> bool {
    caller.namespaces.as_ref().is_none_or(|scope| {
        hold.selector
            .namespace
            .as_deref()
            .is_some_and(|ns| scope.allows(ns))
    })
}

/// The audit entry of a hold change.
pub(super) fn hold_entry(
    caller: &Caller,
    action: &str,
    params: std::collections::BTreeMap<String, String>,
    started: Instant,
) -> Entry {
    Entry {
        at: Timestamp::now(),
        who: caller.name.clone(),
        role: caller.role.as_str().to_owned(),
        action: action.to_owned(),
        params,
        count: 1,
        tiers: Vec::new(),
        took_ms: started.elapsed().as_millis() as u64,
        refused: None,
        namespaces: caller.scope_patterns(),
    }
}

/// The 500 of a hold change that was not made. When its entry was written but the holds could
/// not be saved, a second entry says the change did not happen.
pub(super) fn hold_change_failed(
    state: &ApiState,
    caller: &Caller,
    action: &str,
    e: &crate::holds::ChangeError<anyhow::Error>,
) -> Response {
    if let crate::holds::ChangeError::Save(save) = e {
        let params = std::collections::BTreeMap::from([("error".to_owned(), format!("{save:#}"))]);
        let failed = hold_entry(caller, &format!("{action}.failed"), params, Instant::now());
        if let Err(audit) = tokio::task::block_in_place(|| state.audit.append(failed)) {
            tracing::error!(error = %format!("{audit:#}"), "cannot record that a hold change failed");
        }
    }
    match e {
        // The holds' store (the control topic's broker, the data dir's disk) failed: nothing
        // changed, and the same request may succeed later.
        crate::holds::ChangeError::Read(_) | crate::holds::ChangeError::Save(_) => {
            ApiError::Unavailable(format!("{e:#}")).into_response()
        }
        _ => ApiError::Internal(format!("{e:#}")).into_response(),
    }
}

/// Lists the legal holds (auditor and admin).
pub(super) async fn list_holds(State(state): State<ApiState>, identity: Identity) -> Response {
    let started = Instant::now();
    let caller = match state.authorize(
        identity,
        Role::Auditor,
        "list legal holds",
        "hold.list",
        BTreeMap::new,
    ) {
        Ok(caller) => caller,
        Err(response) => return *response,
    };
    let mut holds = match tokio::task::block_in_place(|| state.holds.list()) {
        Ok(holds) => holds,
        Err(e) => return ApiError::Unavailable(format!("{e:#}")).into_response(),
    };
    // A scoped token sees the holds on its namespaces only.
    holds.retain(|hold| in_scope(&caller, hold));
    if let Err(e) = state.record(
        &caller,
        "hold.list",
        None,
        holds.len() as u64,
        Vec::new(),
        started.elapsed(),
    ) {
        return e.into_response();
    }
    json(serde_json::json!({"holds": holds}).to_string())
}

/// Releases a legal hold (admin).
pub(super) async fn release_hold(
    State(state): State<ApiState>,
    identity: Identity,
    Path(id): Path<String>,
) -> Response {
    let started = Instant::now();
    let caller = match state.authorize(
        identity,
        Role::Admin,
        "release legal holds",
        "hold.release",
        || BTreeMap::from([("id".to_owned(), id.clone())]),
    ) {
        Ok(caller) => caller,
        Err(response) => return *response,
    };
    // A hold's selector never changes, so checking the scope before the release is enough.
    if caller.namespaces.is_some() {
        let holds = match tokio::task::block_in_place(|| state.holds.list()) {
            Ok(holds) => holds,
            Err(e) => return ApiError::Unavailable(format!("{e:#}")).into_response(),
        };
        if let Some(hold) = holds.iter().find(|h| h.id == id)
            && !in_scope(&caller, hold)
        {
            return state.refuse(
                Some(&caller),
                "hold.release",
                BTreeMap::from([("id".to_owned(), id.clone())]),
                ApiError::Forbidden(format!(
                    "{} may not release hold {id:?}: it selects no namespace of its scope",
                    caller.name
                )),
            );
        }
    }
    // Audited under the holds' lock before the release takes effect: a hold the audit log does
    // not show released stays in force.
    let released = tokio::task::block_in_place(|| {
        state.holds.release_audited(&id, |hold| {
            let params = std::collections::BTreeMap::from([
                ("id".to_owned(), hold.id.clone()),
                ("reason".to_owned(), hold.reason.clone()),
            ]);
            state
                .audit
                .append(hold_entry(&caller, "hold.release", params, started))
                .map(|_| ())
        })
    });
    match released {
        Ok(Some(hold)) => json(serde_json::json!({"released": hold.id}).to_string()),
        Ok(None) => ApiError::NotFound(format!("no hold {id:?}")).into_response(),
        Err(e) => hold_change_failed(&state, &caller, "hold.release", &e),
    }
}
