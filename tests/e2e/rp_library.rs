//! Interoperability: the `openidconnect` crate, a standard relying-party library, runs the
//! authorization code flow with PKCE, validates the ID token (signature, nonce, at_hash),
//! refreshes and calls userinfo against `bulwark serve`, configured from discovery alone.

use openidconnect::core::{CoreClient, CoreProviderMetadata, CoreResponseType, CoreUserInfoClaims};
use openidconnect::{
    AccessTokenHash, AuthenticationFlow, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl,
    Nonce, OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
};

use crate::flow::*;
use crate::support::*;

#[tokio::test]
async fn the_openidconnect_crate_runs_code_pkce_refresh_and_userinfo_from_discovery() {
    let data = DataDir::new();
    let w = world(&data);
    let server = Server::start(&data);
    let http_client = openidconnect::reqwest::ClientBuilder::new()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let metadata =
        CoreProviderMetadata::discover_async(IssuerUrl::new(server.issuer.clone()).unwrap(), &http_client)
            .await
            .expect("discovery");
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(w.client.id.clone()),
        Some(ClientSecret::new(w.client.secret.clone())),
    )
    .set_redirect_uri(RedirectUrl::new(CALLBACK.to_string()).unwrap());

    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, csrf, nonce) = client
        .authorize_url(
            AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("offline_access".into()))
        .set_pkce_challenge(challenge)
        .url();

    // The user's part, in our cookie-keeping browser.
    let b = Browser::new();
    let login = b.get(auth_url.as_str()).await;
    let consent = b.login(&server, &login, "alice", PASSWORD).await;
    let done = b.consent(&server, &consent, "approve").await;
    let q = done.redirect_params();
    assert_eq!(&q["state"], csrf.secret());
    assert_eq!(q["iss"], server.issuer);

    let tokens = client
        .exchange_code(AuthorizationCode::new(q["code"].clone()))
        .expect("token endpoint from discovery")
        .set_pkce_verifier(verifier)
        .request_async(&http_client)
        .await
        .expect("code exchange");
    let id_token = tokens.id_token().expect("an ID token");
    let id_verifier = client.id_token_verifier();
    let claims = id_token
        .claims(&id_verifier, &nonce)
        .expect("the ID token validates");
    assert_eq!(claims.subject().as_str(), w.sub);
    assert!(claims.auth_time().is_some());
    let expected = claims.access_token_hash().expect("at_hash");
    let actual = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&id_verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(&actual, expected);

    let info: CoreUserInfoClaims = client
        .user_info(tokens.access_token().to_owned(), Some(claims.subject().clone()))
        .expect("userinfo endpoint from discovery")
        .request_async(&http_client)
        .await
        .expect("userinfo");
    assert_eq!(info.subject().as_str(), w.sub);
    assert_eq!(info.email().map(|e| e.as_str()), Some("alice@example.com"));
    assert_eq!(info.preferred_username().map(|u| u.as_str()), Some("alice"));

    let rt = tokens.refresh_token().expect("a refresh token (offline_access)");
    let refreshed = client
        .exchange_refresh_token(rt)
        .expect("token endpoint")
        .request_async(&http_client)
        .await
        .expect("refresh");
    assert_ne!(
        refreshed.refresh_token().unwrap().secret(),
        rt.secret(),
        "rotated"
    );
    let again = client
        .exchange_refresh_token(rt)
        .unwrap()
        .request_async(&http_client)
        .await;
    assert!(again.is_err(), "the rotated token is spent");
}
