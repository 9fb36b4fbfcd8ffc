// Interop: panva's openid-client 6 (a certified relying-party library), configured from
// discovery alone, drives Bulwark with DPoP-bound tokens (RFC 9449).
//
//   node openid_client.mjs cc   ISSUER CLIENT_ID CLIENT_SECRET SCOPE
//   node openid_client.mjs code ISSUER CLIENT_ID CLIENT_SECRET|- SCOPE REDIRECT_URI [par]
//
// `cc`: a DPoP client_credentials grant. `code`: prints {"authorize": URL} on a line, reads the
// redirect (callback URL with the code) from stdin, then redeems it with DPoP, refreshes with
// DPoP and calls userinfo with DPoP. With `par` the authorization request is pushed (RFC 9126)
// with a DPoP proof. Prints one JSON object of what it got; exits non-zero on any failure.
//
//   node openid_client.mjs device ISSUER CLIENT_ID CLIENT_SECRET|- SCOPE
//
// `device`: the device authorization grant (RFC 8628) from discovery: prints the device
// authorization response on a line (for the user's part, in a browser), polls the token endpoint
// with DPoP as the library does (interval, slow_down) until it gets tokens, refreshes with DPoP
// and calls userinfo with DPoP.
import * as client from 'openid-client'
import { createInterface } from 'node:readline'

const [mode, issuer, clientId, secret, scope, redirectUri, par] = process.argv.slice(2)

function fail(step, e) {
  console.error(`${step}: ${e?.name ?? ''} ${e?.code ?? ''} ${e?.message ?? e} ${JSON.stringify(e?.cause ?? '')}`)
  process.exit(1)
}

async function configure() {
  const auth = secret === '-' ? client.None() : client.ClientSecretBasic(secret)
  const config = await client
    .discovery(new URL(issuer), clientId, undefined, auth, { execute: [client.allowInsecureRequests] })
    .catch((e) => fail('discovery', e))
  const meta = config.serverMetadata()
  if (!meta.dpop_signing_alg_values_supported?.includes('ES256')) fail('discovery', 'no DPoP ES256')
  return config
}

async function readLine() {
  const rl = createInterface({ input: process.stdin })
  for await (const line of rl) {
    rl.close()
    return line.trim()
  }
  fail('stdin', 'no callback URL')
}

const config = await configure()
const keys = await client.randomDPoPKeyPair('ES256')
const DPoP = client.getDPoPHandle(config, keys)
const out = {}

if (mode === 'cc') {
  const t = await client.clientCredentialsGrant(config, { scope }, { DPoP }).catch((e) => fail('client_credentials', e))
  out.cc = { token_type: t.token_type, access_token: t.access_token, scope: t.scope }
} else if (mode === 'code') {
  const verifier = client.randomPKCECodeVerifier()
  const state = client.randomState()
  const params = {
    redirect_uri: redirectUri,
    scope,
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
  }
  const url = par === 'par'
    ? await client.buildAuthorizationUrlWithPAR(config, params, { DPoP }).catch((e) => fail('par', e))
    : client.buildAuthorizationUrl(config, params)
  out.authorize = url.href
  console.log(JSON.stringify({ authorize: url.href }))
  const callback = await readLine()
  const t = await client
    .authorizationCodeGrant(config, new URL(callback), { pkceCodeVerifier: verifier, expectedState: state }, undefined, { DPoP })
    .catch((e) => fail('authorization_code', e))
  out.code = { token_type: t.token_type, access_token: t.access_token, refresh_token: t.refresh_token, sub: t.claims()?.sub }
  const r = await client.refreshTokenGrant(config, t.refresh_token, undefined, { DPoP }).catch((e) => fail('refresh_token', e))
  out.refresh = { token_type: r.token_type, access_token: r.access_token, refresh_token: r.refresh_token }
  const u = await client.fetchUserInfo(config, r.access_token, out.code.sub, { DPoP }).catch((e) => fail('userinfo', e))
  out.userinfo = u
} else if (mode === 'device') {
  const d = await client.initiateDeviceAuthorization(config, { scope }).catch((e) => fail('device_authorization', e))
  console.log(JSON.stringify({
    user_code: d.user_code,
    verification_uri: d.verification_uri,
    verification_uri_complete: d.verification_uri_complete,
    expires_in: d.expires_in,
    interval: d.interval,
  }))
  const t = await client.pollDeviceAuthorizationGrant(config, d, undefined, { DPoP }).catch((e) => fail('device_code', e))
  out.device = { token_type: t.token_type, access_token: t.access_token, refresh_token: t.refresh_token, sub: t.claims()?.sub }
  const r = await client.refreshTokenGrant(config, t.refresh_token, undefined, { DPoP }).catch((e) => fail('refresh_token', e))
  out.refresh = { token_type: r.token_type, access_token: r.access_token, refresh_token: r.refresh_token }
  out.userinfo = await client.fetchUserInfo(config, r.access_token, out.device.sub, { DPoP }).catch((e) => fail('userinfo', e))
} else {
  fail('usage', `unknown mode ${mode}`)
}
console.log(JSON.stringify(out))
