//! Server-rendered pages: login, consent, account, error. Plain HTML forms that work without
//! JavaScript; no external assets; one stylesheet inlined and allowed by its hash in the
//! Content-Security-Policy; every value escaped.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::fmt::Write as _;
use std::sync::LazyLock;

use crate::service::account::ConnectedApp;
use crate::service::authorize::{ConsentPage, LoginPage};

/// HTML-escape text and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const CSS: &str = r#"
*{box-sizing:border-box}
html{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:#1e293b;background:#f1f5f9}
body{margin:0;min-height:100vh;display:flex;flex-direction:column;align-items:center;padding:48px 16px}
.brand{display:flex;align-items:center;gap:10px;font-weight:700;font-size:18px;letter-spacing:.2px;color:#0f172a;margin-bottom:24px}
.brand svg{width:28px;height:28px}
main{width:100%;max-width:420px;background:#fff;border:1px solid #e2e8f0;border-radius:14px;box-shadow:0 10px 30px rgba(15,23,42,.08);padding:32px}
main.wide{max-width:640px}
h1{font-size:22px;margin:0 0 6px}
p.lead{margin:0 0 22px;color:#475569;line-height:1.5}
label{display:block;font-weight:600;font-size:14px;margin:16px 0 6px}
input[type=text],input[type=password]{width:100%;padding:11px 12px;font-size:16px;border:1px solid #cbd5e1;border-radius:8px;background:#fff;color:#0f172a}
input:focus,button:focus{outline:3px solid #a5b4fc;outline-offset:1px;border-color:#4f46e5}
button{font:inherit;font-weight:600;font-size:15px;border-radius:8px;padding:11px 16px;cursor:pointer;border:1px solid transparent}
.primary{background:#4f46e5;color:#fff;width:100%;margin-top:22px}
.primary:hover{background:#4338ca}
.secondary{background:#fff;color:#334155;border-color:#cbd5e1}
.secondary:hover{background:#f8fafc}
.danger{background:#fff;color:#b91c1c;border-color:#fecaca;padding:7px 12px;font-size:14px}
.danger:hover{background:#fef2f2}
.row{display:flex;gap:12px;margin-top:24px}
.row button{flex:1}
.row .primary{margin-top:0}
.app.plain{margin:0;padding:0;border:0;background:none}
.alert{background:#fef2f2;border:1px solid #fecaca;color:#991b1b;border-radius:8px;padding:10px 12px;margin:0 0 16px;font-size:14px}
.notice{background:#f0fdf4;border:1px solid #bbf7d0;color:#166534;border-radius:8px;padding:10px 12px;margin:0 0 16px;font-size:14px}
.app{display:flex;align-items:center;gap:14px;padding:14px;border:1px solid #e2e8f0;border-radius:10px;margin-bottom:18px;background:#f8fafc}
.avatar{flex:none;width:42px;height:42px;border-radius:10px;background:#e0e7ff;color:#3730a3;display:flex;align-items:center;justify-content:center;font-weight:700;font-size:18px}
.app .name{font-weight:700}
.app a,.muted a{color:#4f46e5}
.muted{color:#64748b;font-size:13px}
h2{font-size:14px;text-transform:uppercase;letter-spacing:.06em;color:#64748b;margin:20px 0 8px}
ul.scopes{list-style:none;margin:0;padding:0}
ul.scopes li{padding:9px 0 9px 26px;position:relative;border-bottom:1px solid #f1f5f9;line-height:1.4}
ul.scopes li:before{content:"";position:absolute;left:4px;top:15px;width:9px;height:9px;border-radius:50%;background:#4f46e5}
ul.scopes.old li:before{background:#94a3b8}
ul.scopes code{font-size:12px;color:#64748b;margin-left:6px}
ul.agents{list-style:none;margin:0;padding:0}
ul.agents li{display:flex;align-items:center;gap:8px;padding:8px 0;border-bottom:1px solid #f1f5f9}
ul.agents li form{margin-left:auto}
.card{border:1px solid #e2e8f0;border-radius:10px;padding:16px;margin-bottom:14px}
.card header{display:flex;justify-content:space-between;align-items:flex-start;gap:12px}
.topbar{display:flex;justify-content:space-between;align-items:center;margin-bottom:20px;gap:12px}
footer{margin-top:20px;color:#94a3b8;font-size:12px}
"#;

static CSS_HASH: LazyLock<String> = LazyLock::new(|| {
    use base64::Engine;
    use sha2::{Digest, Sha256};
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(CSS.as_bytes()))
});

const LOGO: &str = r##"<svg viewBox="0 0 24 24" aria-hidden="true"><path fill="#4f46e5" d="M12 2 4 5v6c0 5 3.4 9.7 8 11 4.6-1.3 8-6 8-11V5l-8-3z"/><path fill="#fff" d="m10.6 15.6-3.2-3.2 1.4-1.4 1.8 1.8 4.6-4.6 1.4 1.4z"/></svg>"##;

/// A complete HTML response with the security headers every page carries. `form_origin` is
/// an extra origin forms may lead to (the consent answer redirects to the client).
pub fn page(status: u16, title: &str, body: &str, wide: bool, form_origin: Option<&str>) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta name=\"referrer\" content=\"no-referrer\"><title>{} · Bulwark</title><style>{CSS}</style></head>\
<body><div class=\"brand\">{LOGO}<span>Bulwark</span></div><main{}>{body}</main>\
<footer>Protected by Bulwark</footer></body></html>",
        esc(title),
        if wide { " class=\"wide\"" } else { "" },
    );
    let form_action = match form_origin {
        Some(o) => format!("'self' {o}"),
        None => "'self'".into(),
    };
    let csp = format!(
        "default-src 'none'; style-src 'sha256-{}'; img-src 'self' data:; form-action {form_action}; \
         frame-ancestors 'none'; base-uri 'none'",
        *CSS_HASH
    );
    let mut resp = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        html,
    )
        .into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// Our own error page (never a redirect).
pub fn error_page(status: u16, message: &str) -> Response {
    let body = format!(
        "<h1>Something went wrong</h1><p class=\"lead\" role=\"alert\">{}</p>",
        esc(message)
    );
    page(status, "Error", &body, false, None)
}

/// The sign-in form. `action` is where it posts; `hidden` are extra hidden fields.
pub fn login_page(p: &LoginPage, action: &str, hidden: &[(&str, &str)]) -> Response {
    let mut body = String::new();
    body.push_str("<h1>Sign in</h1>");
    match &p.client_name {
        Some(n) => {
            let _ = write!(
                body,
                "<p class=\"lead\">to continue to <strong>{}</strong></p>",
                esc(n)
            );
        }
        None => body.push_str("<p class=\"lead\">to manage your connected apps</p>"),
    }
    if let Some(e) = &p.error {
        let _ = write!(body, "<div class=\"alert\" role=\"alert\">{}</div>", esc(e));
    }
    let _ = write!(body, "<form method=\"post\" action=\"{}\">", esc(action));
    for (k, v) in hidden {
        let _ = write!(
            body,
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
            esc(k),
            esc(v)
        );
    }
    let _ = write!(
        body,
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(&p.csrf)
    );
    let (user_focus, pass_focus) = if p.username.is_empty() {
        (" autofocus", "")
    } else {
        ("", " autofocus")
    };
    let _ = write!(
        body,
        "<label for=\"username\">Username</label>\
<input type=\"text\" id=\"username\" name=\"username\" autocomplete=\"username\" autocapitalize=\"none\" \
spellcheck=\"false\" required maxlength=\"128\" value=\"{}\"{user_focus}>\
<label for=\"password\">Password</label>\
<input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" required{pass_focus}>\
<button class=\"primary\" type=\"submit\">Sign in</button></form>",
        esc(&p.username)
    );
    page(
        if p.error.is_some() { 401 } else { 200 },
        "Sign in",
        &body,
        false,
        p.redirect_origin.as_deref(),
    )
}

fn initial(name: &str) -> String {
    name.chars()
        .find(|c| c.is_alphanumeric())
        .map(|c| c.to_uppercase().to_string())
        .unwrap_or_else(|| "?".into())
}

fn scope_list(scopes: &[(String, String)], class: &str) -> String {
    let mut s = format!("<ul class=\"scopes{class}\">");
    for (name, desc) in scopes {
        let _ = write!(s, "<li>{}<code>{}</code></li>", esc(desc), esc(name));
    }
    s.push_str("</ul>");
    s
}

/// The consent page: the client, the new scopes, the ones already granted, approve / deny.
pub fn consent_page(p: &ConsentPage, action: &str) -> Response {
    let name = p
        .client
        .metadata
        .client_name
        .clone()
        .unwrap_or_else(|| p.client.client_id.clone());
    let who = p.user.name.clone().unwrap_or_else(|| p.user.username.clone());
    let mut body = String::new();
    let _ = write!(
        body,
        "<h1>Allow {} access?</h1><p class=\"lead\">Signed in as <strong>{}</strong>.</p>",
        esc(&name),
        esc(&who)
    );
    let _ = write!(
        body,
        "<div class=\"app\"><div class=\"avatar\" aria-hidden=\"true\">{}</div><div><div class=\"name\">{}</div>",
        esc(&initial(&name)),
        esc(&name)
    );
    let md = &p.client.metadata;
    let mut links = Vec::new();
    if let Some(u) = &md.client_uri {
        links.push(format!(
            "<a href=\"{}\" rel=\"noopener noreferrer\">{}</a>",
            esc(u),
            esc(u)
        ));
    }
    if let Some(u) = &md.policy_uri {
        links.push(format!(
            "<a href=\"{}\" rel=\"noopener noreferrer\">Privacy policy</a>",
            esc(u)
        ));
    }
    if let Some(u) = &md.tos_uri {
        links.push(format!(
            "<a href=\"{}\" rel=\"noopener noreferrer\">Terms</a>",
            esc(u)
        ));
    }
    if !links.is_empty() {
        let _ = write!(body, "<div class=\"muted\">{}</div>", links.join(" · "));
    }
    body.push_str("</div></div>");
    if !p.requested.is_empty() {
        body.push_str(if p.granted.is_empty() {
            "<h2>It will be able to</h2>"
        } else {
            "<h2>It asks for new access</h2>"
        });
        body.push_str(&scope_list(&p.requested, ""));
    }
    if !p.granted.is_empty() {
        body.push_str("<h2>You already allowed</h2>");
        body.push_str(&scope_list(&p.granted, " old"));
    }
    if let Some(agents) = &p.agents {
        body.push_str("<h2>Agents that may act for you</h2>");
        if agents.is_empty() {
            let _ = write!(
                body,
                "<p class=\"muted\">{} has no agents yet; it may act for you itself. Agents it adds later are listed on your account page, where you can stop each one.</p>",
                esc(&name)
            );
        } else {
            body.push_str("<ul class=\"agents\">");
            for a in agents {
                let _ = write!(body, "<li>{}</li>", esc(a));
            }
            let _ = write!(
                body,
                "</ul><p class=\"muted\">Each acts with at most the access above, and only as {}'s agent. You can stop any of them from your account page.</p>",
                esc(&name)
            );
        }
    }
    let _ = write!(
        body,
        "<p class=\"muted\">You will be sent back to {}. You can take this access back at any time from your account page.</p>",
        esc(&p.redirect_uri)
    );
    let _ = write!(
        body,
        "<form method=\"post\" action=\"{}\"><input type=\"hidden\" name=\"action\" value=\"consent\">\
<input type=\"hidden\" name=\"interaction\" value=\"{}\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
<div class=\"row\"><button class=\"secondary\" type=\"submit\" name=\"decision\" value=\"deny\">Deny</button>\
<button class=\"primary\" type=\"submit\" name=\"decision\" value=\"approve\" autofocus>Allow</button></div></form>",
        esc(action),
        esc(&p.pending_id),
        esc(&p.csrf)
    );
    let origin = crate::service::authorize::origin_of(&p.redirect_uri);
    page(200, "Allow access", &body, false, origin.as_deref())
}

fn date(ts: i64) -> String {
    // Civil date from Unix seconds (UTC), Howard Hinnant's algorithm.
    let days = ts.div_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = ts.rem_euclid(86_400);
    format!(
        "{} {d}, {y}, {:02}:{:02} UTC",
        MONTHS[(m - 1) as usize],
        secs / 3600,
        (secs % 3600) / 60
    )
}

/// What the account page shows.
pub struct AccountView<'a> {
    pub tenant: &'a str,
    pub who: &'a str,
    pub csrf: &'a str,
    pub apps: &'a [ConnectedApp],
    pub notice: Option<&'a str>,
    pub base: &'a str,
}

pub fn account_page(v: &AccountView<'_>) -> Response {
    let mut body = String::new();
    let _ = write!(
        body,
        "<div class=\"topbar\"><div><h1>Connected apps</h1><div class=\"muted\">Signed in as <strong>{}</strong></div></div>\
<form method=\"post\" action=\"{}/account/logout\"><input type=\"hidden\" name=\"tenant\" value=\"{}\">\
<input type=\"hidden\" name=\"csrf\" value=\"{}\"><button class=\"secondary\" type=\"submit\">Sign out</button></form></div>",
        esc(v.who),
        esc(v.base),
        esc(v.tenant),
        esc(v.csrf)
    );
    if let Some(n) = v.notice {
        let _ = write!(body, "<div class=\"notice\" role=\"status\">{}</div>", esc(n));
    }
    if v.apps.is_empty() {
        body.push_str("<p class=\"lead\">No apps have access to your account.</p>");
    }
    for a in v.apps {
        let _ = write!(
            body,
            "<section class=\"card\" aria-label=\"{}\"><header><div class=\"app plain\">\
<div class=\"avatar\" aria-hidden=\"true\">{}</div><div><div class=\"name\">{}</div><div class=\"muted\">Allowed {}{}</div></div></div>\
<form method=\"post\" action=\"{}/account/apps/{}/revoke\"><input type=\"hidden\" name=\"tenant\" value=\"{}\">\
<input type=\"hidden\" name=\"csrf\" value=\"{}\"><button class=\"danger\" type=\"submit\">Revoke</button></form></header>",
            esc(&a.name),
            esc(&initial(&a.name)),
            esc(&a.name),
            esc(&date(a.granted_at)),
            match a.last_used {
                Some(t) => format!(" · last used {}", esc(&date(t))),
                None => " · not used yet".into(),
            },
            esc(v.base),
            esc(&a.client_id),
            esc(v.tenant),
            esc(v.csrf)
        );
        body.push_str(&scope_list(&a.scopes, ""));
        if !a.agents.is_empty() {
            body.push_str("<h2>Agents acting for you</h2><ul class=\"agents\">");
            for g in &a.agents {
                let _ = write!(
                    body,
                    "<li><span class=\"name\">{}</span> <span class=\"muted\">last acted {}</span> ",
                    esc(&g.name),
                    esc(&date(g.last_acted))
                );
                if g.stopped {
                    body.push_str("<span class=\"muted\">· stopped</span></li>");
                } else {
                    let _ = write!(
                        body,
                        "<form method=\"post\" action=\"{}/account/apps/{}/agents/{}/stop\"><input type=\"hidden\" name=\"tenant\" value=\"{}\">\
<input type=\"hidden\" name=\"csrf\" value=\"{}\"><button class=\"danger\" type=\"submit\" aria-label=\"Stop {}\">Stop</button></form></li>",
                        esc(v.base),
                        esc(&a.client_id),
                        esc(&g.client_id),
                        esc(v.tenant),
                        esc(v.csrf),
                        esc(&g.name)
                    );
                }
            }
            body.push_str("</ul>");
        }
        body.push_str("</section>");
    }
    page(200, "Connected apps", &body, true, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn dates() {
        assert_eq!(date(0), "Jan 1, 1970, 00:00 UTC");
        assert_eq!(date(1_795_000_000), "Nov 18, 2026, 11:06 UTC");
    }
}
