"""A fake OIDC identity provider (a CI's token service) for the trusted-publishing tests, on 127.0.0.1.

    async with FakeIssuer() as issuer:
        token = issuer.token({**github_claims(), "aud": "npm:registry.example.com"})
        issuer.rotate()  # a new kid the registry has not seen; faults are attributes

Routes: `GET /.well-known/openid-configuration`, `GET /jwks`, and GitHub Actions'
`GET /token?audience=...` with `Authorization: Bearer <request_token>` → `{"value":
<id token>}` of `github_job` plus `aud`. The claim builders make each provider's job
claims; never `iss`, `aud` or the times, which `FakeIssuer.token` adds.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Self

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from tests.support.loopback_site import listen

__all__ = ["HOST", "FakeIssuer", "IssuerKey", "circleci_claims", "github_claims", "gitlab_claims",
           "kubernetes_claims", "new_key"]

HOST = "127.0.0.1"
SHUTDOWN_TIMEOUT = 1.0  # a slow JWKS ends on stop(); nothing should take this long
ALGORITHMS = ("RS256", "ES256")
DISCOVERY_PATH = "/.well-known/openid-configuration"

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class IssuerKey:
    """One signing key: `kid` and `alg` as its JWK names them."""

    kid: str
    alg: str
    private: PrivateKey

    def public_jwk(self) -> dict[str, Any]:
        """The public half as a JWK with `kid`, `alg` and `use: sig`."""
        algorithm = RSAAlgorithm if self.alg == "RS256" else ECAlgorithm
        jwk = algorithm.to_jwk(self.private.public_key(), as_dict=True)
        return {**jwk, "kid": self.kid, "alg": self.alg, "use": "sig"}


def new_key(alg: str = "RS256", kid: str | None = None) -> IssuerKey:
    """A fresh RS256 (RSA 2048) or ES256 (P-256) key; `kid` random unless given."""
    if alg == "RS256":
        private: PrivateKey = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif alg == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
    else:
        raise ValueError(f"unsupported alg {alg!r}: use one of {ALGORITHMS}")
    return IssuerKey(kid or f"{alg.lower()}-{secrets.token_hex(8)}", alg, private)


class FakeIssuer:
    """An OIDC issuer (aiohttp) with settable keys, job claims and faults.

    Faults (plain attributes, lifted by `clear_faults()`): `discovery_status`
    and `jwks_status` (answer that status instead of 200), `discovery_issuer`
    (the `issuer` discovery names instead of `url`), `discovery_extra` (fields
    merged last into discovery, e.g. another `jwks_uri`), `extra_jwks` (raw
    JWKs appended to the set, e.g. an encryption key or a malformed one),
    `jwks_delay` (seconds to wait before answering the JWKS).
    Counters (requests received, faulted or not; `reset_counts()`):
    `discovery_fetches`, `jwks_fetches`, `token_requests`, and
    `token_audiences`, the audiences `/token` was asked for.
    """

    def __init__(self, *, request_token: str = "fake-actions-request-token", port: int = 0) -> None:
        self.request_token = request_token
        self.keys: list[IssuerKey] = [new_key("RS256"), new_key("ES256")]
        self.github_job: dict[str, Any] = github_claims()
        self._port = port
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()
        self.clear_faults()
        self.reset_counts()

    async def start(self) -> None:
        """Listen on 127.0.0.1; after a stop(), on the same port again."""
        if self._runner is not None:
            return
        app = web.Application()
        app.router.add_get(DISCOVERY_PATH, self._discovery)
        app.router.add_get("/jwks", self._jwks)
        app.router.add_get("/token", self._id_token_request)
        runner, self._port = await listen(app, self._port, shutdown_timeout=SHUTDOWN_TIMEOUT)
        self._stopping = asyncio.Event()
        self._runner = runner

    async def stop(self) -> None:
        """Close the listener; a slow JWKS answer in progress is cut. Keys and counters are kept."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self._stopping.set()
        await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        """The issuer identifier and the `iss` of its tokens: `http://127.0.0.1:PORT`."""
        if not self._port:
            raise RuntimeError("FakeIssuer has no URL before start()")
        return f"http://{HOST}:{self._port}"

    @property
    def discovery_url(self) -> str:
        return self.url + DISCOVERY_PATH

    @property
    def jwks_uri(self) -> str:
        return self.url + "/jwks"

    @property
    def token_request_url(self) -> str:
        """GitHub Actions' `ACTIONS_ID_TOKEN_REQUEST_URL`."""
        return self.url + "/token"

    def github_actions_env(self) -> dict[str, str]:
        """The environment under which the npm CLI asks this issuer for an id token."""
        return {"GITHUB_ACTIONS": "true", "ACTIONS_ID_TOKEN_REQUEST_URL": self.token_request_url,
                "ACTIONS_ID_TOKEN_REQUEST_TOKEN": self.request_token}

    def signing_key(self, alg: str = "RS256") -> IssuerKey:
        """The published key `token()` signs with for `alg`: the last one added."""
        for key in reversed(self.keys):
            if key.alg == alg:
                return key
        raise LookupError(f"no published {alg} key")

    def add_key(self, key: IssuerKey | None = None, *, alg: str = "RS256", kid: str | None = None) -> IssuerKey:
        """Publish `key` (or a new one) in the JWKS; it signs from now on for its alg."""
        key = key or new_key(alg, kid)
        if any(published.kid == key.kid for published in self.keys):
            raise ValueError(f"kid {key.kid!r} is already published")
        self.keys.append(key)
        return key

    def rotate(self, alg: str = "RS256", *, retire: bool = False) -> IssuerKey:
        """Publish a new `alg` key (new kid) and sign with it; `retire` unpublishes the one it replaces."""
        old = self.signing_key(alg) if retire else None
        key = self.add_key(alg=alg)
        if old is not None:
            self.remove_key(old.kid)
        return key

    def remove_key(self, kid: str) -> None:
        """Unpublish a key: tokens signed with it name a kid the JWKS lacks."""
        self.keys = [key for key in self.keys if key.kid != kid]

    def stranger_key(self, alg: str = "RS256", *, same_kid: bool = False) -> IssuerKey:
        """A key the JWKS does not hold: with a new kid, or (`same_kid`) with the
        kid of the published `alg` key, so only the signature gives it away.
        """
        return new_key(alg, self.signing_key(alg).kid if same_kid else None)

    def claims(
        self, claims: Mapping[str, Any], *, lifetime: float = 600, issued_at: float | datetime | None = None
    ) -> dict[str, Any]:
        """`iss`, `iat`, `nbf`, `exp`, `jti`, then `claims` (which override them)."""
        if isinstance(issued_at, datetime):
            issued_at = issued_at.timestamp()
        iat = int(time.time() if issued_at is None else issued_at)
        defaults = {"iss": self.url, "iat": iat, "nbf": iat, "exp": int(iat + lifetime), "jti": uuid.uuid4().hex}
        return {**defaults, **claims}

    def token(
        self, claims: Mapping[str, Any], *, alg: str = "RS256", kid: str | None = None, key: IssuerKey | None = None,
        lifetime: float = 600, issued_at: float | datetime | None = None, headers: Mapping[str, Any] | None = None,
    ) -> str:
        """A compact JWT signed by `key` (its alg wins over `alg`) or by the published `alg` key. `kid`
        replaces the key's kid in the header ("" leaves the kid out); `headers` are merged last; `lifetime`
        < 0 makes it expired already. The payload is `claims()`'s."""
        key = key or self.signing_key(alg)
        header_kid = key.kid if kid is None else kid
        header = ({"kid": header_kid} if header_kid else {}) | dict(headers or {})
        payload = self.claims(claims, lifetime=lifetime, issued_at=issued_at)
        return jwt.encode(payload, key.private, algorithm=key.alg, headers=header)

    def forged_token(self, claims: Mapping[str, Any], *, attack: str = "none", lifetime: float = 600) -> str:
        """A token a verifier must refuse, with valid-looking claims: `attack="none"` has `alg: none` and no
        signature; `"hs256"` is HMAC-SHA256 keyed with the PEM of the published RS256 public key, under its
        kid (the algorithm-confusion attack)."""
        payload = self.claims(claims, lifetime=lifetime)
        if attack == "none":
            return _compact({"alg": "none", "typ": "JWT"}, payload, lambda _: b"")
        if attack != "hs256":
            raise ValueError(f"unknown attack {attack!r}: use 'none' or 'hs256'")
        rsa_key = self.signing_key("RS256")
        pem = rsa_key.private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        header = {"alg": "HS256", "typ": "JWT", "kid": rsa_key.kid}
        return _compact(header, payload, lambda signing_input: hmac.digest(pem, signing_input, "sha256"))

    def clear_faults(self) -> None:
        """Serve discovery and the JWKS truthfully, at once."""
        self.discovery_status = self.jwks_status = 200
        self.discovery_issuer: str | None = None
        self.discovery_extra: dict[str, Any] = {}
        self.extra_jwks: list[dict[str, Any]] = []
        self.jwks_delay = 0.0

    def reset_counts(self) -> None:
        """Zero the counters and forget the audiences asked for."""
        self.discovery_fetches = self.jwks_fetches = self.token_requests = 0
        self.token_audiences: list[str] = []

    def discovery_document(self) -> dict[str, Any]:
        """What discovery serves now (faults included, statuses aside)."""
        algorithms = sorted({key.alg for key in self.keys}, key=ALGORITHMS.index)
        return {
            "issuer": self.discovery_issuer or self.url,
            "jwks_uri": self.jwks_uri,
            "id_token_signing_alg_values_supported": algorithms,
            "response_types_supported": ["id_token"], "subject_types_supported": ["public", "pairwise"],
            "scopes_supported": ["openid"],
            "claims_supported": ["sub", "aud", "exp", "iat", "iss", "jti", "nbf", "ref", "repository", "sha"],
            **self.discovery_extra,
        }

    def jwks(self) -> dict[str, Any]:
        """What the JWKS serves now: the published keys, then `extra_jwks`."""
        return {"keys": [key.public_jwk() for key in self.keys] + self.extra_jwks}

    async def _discovery(self, request: web.Request) -> web.Response:
        self.discovery_fetches += 1
        if self.discovery_status != 200:
            return web.json_response({"error": "discovery fault"}, status=self.discovery_status)
        return web.json_response(self.discovery_document())

    async def _jwks(self, request: web.Request) -> web.Response:
        self.jwks_fetches += 1
        if self.jwks_delay > 0:
            with contextlib.suppress(TimeoutError):  # stop() ends the wait; the connection is cut anyway
                await asyncio.wait_for(self._stopping.wait(), self.jwks_delay)
        if self.jwks_status != 200:
            return web.json_response({"error": "jwks fault"}, status=self.jwks_status)
        return web.json_response(self.jwks())

    async def _id_token_request(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        expected = f"Bearer {self.request_token}".encode()
        if not hmac.compare_digest(request.headers.get("Authorization", "").encode(), expected):
            # JSON even here: the npm CLI parses the body before it looks at the status.
            return web.json_response({"message": "Bad credentials"}, status=401)
        owner = str(self.github_job.get("repository_owner", "acme"))
        audience = request.query.get("audience") or f"https://example.com/{owner}"
        self.token_audiences.append(audience)
        return web.json_response({"value": self.token({**self.github_job, "aud": audience})})


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _compact(header: Mapping[str, Any], payload: Mapping[str, Any], sign: Callable[[bytes], bytes]) -> str:
    signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(payload).encode())}"
    return f"{signing_input}.{_b64url(sign(signing_input.encode()))}"


def _digits(*parts: str, length: int = 9) -> str:
    """A stable numeric id (as a string, as the providers send them) derived from names."""
    return str(int(hashlib.sha256("/".join(parts).encode()).hexdigest(), 16))[:length]


def _uuid(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "https://ci.example.com/" + "/".join(parts)))


def github_claims(
    repository: str = "acme/widget", workflow: str = "publish.yml", ref: str = "refs/heads/main",
    environment: str | None = None,
    *, event_name: str = "push", actor: str = "acme-bot", sha: str | None = None,
    job_workflow_ref: str | None = None, repository_visibility: str = "private",
    runner_environment: str = "github-hosted", run_attempt: int = 1, **extra: Any,
) -> dict[str, Any]:
    """The job claims of a GitHub Actions id token; `extra` overrides any of them.

    `sub` is `repo:OWNER/NAME:environment:ENV` with an environment, else
    `repo:OWNER/NAME:pull_request` for a pull_request event, else
    `repo:OWNER/NAME:ref:REF`. `job_workflow_ref` differs from `workflow_ref`
    when the job runs a reusable workflow (pass `other/repo/.github/workflows/x.yml@ref`).
    """
    owner = repository.split("/", 1)[0]
    scope = f"environment:{environment}" if environment else f"ref:{ref}"
    sub = f"repo:{repository}:" + ("pull_request" if event_name == "pull_request" and not environment else scope)
    workflow_ref = f"{repository}/.github/workflows/{workflow}@{ref}"
    sha = sha or hashlib.sha1(f"{repository}@{ref}".encode()).hexdigest()
    claims: dict[str, Any] = {
        "sub": sub,
        "repository": repository, "repository_id": _digits(repository),
        "repository_owner": owner, "repository_owner_id": _digits(owner, length=7),
        "repository_visibility": repository_visibility,
        "actor": actor, "actor_id": _digits(actor, length=7),
        "workflow": workflow, "workflow_ref": workflow_ref, "workflow_sha": sha,
        "job_workflow_ref": job_workflow_ref or workflow_ref, "job_workflow_sha": sha,
        "ref": ref, "ref_type": "tag" if ref.startswith("refs/tags/") else "branch", "ref_protected": "true",
        "sha": sha, "head_ref": "", "base_ref": "", "event_name": event_name,
        "run_id": _digits(repository, workflow, length=10), "run_number": "42", "run_attempt": str(run_attempt),
        "runner_environment": runner_environment,
    }
    if environment:
        claims["environment"] = environment
    return {**claims, **extra}


def gitlab_claims(
    project_path: str = "acme/widget", config_file: str = ".gitlab-ci.yml", ref: str = "main",
    environment: str | None = None, host: str = "gitlab.example.com",
    *, ref_type: str = "branch", pipeline_source: str = "push", user_login: str = "acme-bot",
    runner_environment: str = "gitlab-hosted", **extra: Any,
) -> dict[str, Any]:
    """The job claims of a GitLab CI id token (`id_tokens:`); `extra` overrides any of them.

    `ci_config_ref_uri` is `HOST/PROJECT_PATH//CONFIG_FILE@refs/heads/REF` (refs/tags for a tag).
    """
    namespace = project_path.rsplit("/", 1)[0]
    ref_path = f"refs/{'tags' if ref_type == 'tag' else 'heads'}/{ref}"
    sha = hashlib.sha1(f"{project_path}@{ref_path}".encode()).hexdigest()
    claims: dict[str, Any] = {
        "sub": f"project_path:{project_path}:ref_type:{ref_type}:ref:{ref}",
        "namespace_id": _digits(namespace, length=6), "namespace_path": namespace,
        "project_id": _digits(project_path, length=8), "project_path": project_path,
        "project_visibility": "private",
        "user_id": _digits(user_login, length=6), "user_login": user_login,
        "user_email": f"{user_login}@example.com", "user_access_level": "maintainer",
        "pipeline_id": _digits(project_path, ref, length=10), "pipeline_source": pipeline_source,
        "job_id": _digits(project_path, ref, "job", length=10),
        "ref": ref, "ref_type": ref_type, "ref_path": ref_path, "ref_protected": "true", "sha": sha,
        "ci_config_ref_uri": f"{host}/{project_path}//{config_file}@{ref_path}", "ci_config_sha": sha,
        "runner_id": _digits(host, "runner", length=5), "runner_environment": runner_environment,
    }
    if environment:
        claims |= {"environment": environment, "environment_protected": "true", "deployment_tier": "production"}
    return {**claims, **extra}


def circleci_claims(
    org_id: str = _uuid("org", "acme"), project_id: str = _uuid("project", "acme/widget"),
    pipeline_definition_id: str = _uuid("pipeline-definition", "acme/widget"),
    vcs_origin: str = "git.example.com/acme/widget", context_ids: Sequence[str] = (),
    *, vcs_ref: str = "refs/heads/main", user_id: str = _uuid("user", "acme-bot"), **extra: Any,
) -> dict[str, Any]:
    """The job claims of a CircleCI id token, named `oidc.circleci.com/...`; `extra` overrides any of them."""
    named = {
        "org-id": org_id, "project-id": project_id, "pipeline-definition-id": pipeline_definition_id,
        "pipeline-id": _uuid("pipeline", project_id, vcs_ref), "workflow-id": _uuid("workflow", project_id, vcs_ref),
        "job-id": _uuid("job", project_id, vcs_ref), "context-ids": list(context_ids),
        "vcs-origin": vcs_origin, "vcs-ref": vcs_ref, "ssh-rerun": False,
    }
    claims = {"sub": f"org/{org_id}/project/{project_id}/user/{user_id}"}
    return claims | {f"oidc.circleci.com/{name}": value for name, value in named.items()} | extra


def kubernetes_claims(
    namespace: str = "ci", service_account: str = "publisher", *, pod: str = "publisher-0", **extra: Any
) -> dict[str, Any]:
    """The claims of a projected Kubernetes service-account token; `extra` overrides any of them."""
    kubernetes = {
        "namespace": namespace,
        "serviceaccount": {"name": service_account, "uid": _uuid("sa", namespace, service_account)},
        "pod": {"name": pod, "uid": _uuid("pod", namespace, pod)},
        "node": {"name": "node-1", "uid": _uuid("node", "node-1")},
    }
    return {"sub": f"system:serviceaccount:{namespace}:{service_account}", "kubernetes.io": kubernetes, **extra}
