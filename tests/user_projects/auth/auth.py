"""Custom auth as the Agent Server's docs write it: bearer tokens name the user, what a user
creates is stamped with its owner, and a user sees only what it owns."""

from langgraph_sdk import Auth

auth = Auth()

TOKENS = {
    "token-a": {"identity": "user-a", "permissions": ["threads:write"], "org": "acme"},
    "token-b": {"identity": "user-b", "permissions": ["threads:write"], "org": "globex"},
    "token-reader": {"identity": "reader", "permissions": []},  # may not create threads
}


@auth.authenticate
async def authenticate(authorization: str | None) -> Auth.types.MinimalUserDict:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or token not in TOKENS:
        raise Auth.exceptions.HTTPException(status_code=401, detail="Invalid or missing token")
    return TOKENS[token]


@auth.on.threads.create
async def create_thread(ctx: Auth.types.AuthContext, value: Auth.types.on.threads.create.value):
    if "threads:write" not in ctx.permissions:
        return False
    value.setdefault("metadata", {})["owner"] = ctx.user.identity
    return None


@auth.on.threads.create_run
async def create_run(ctx: Auth.types.AuthContext, value: Auth.types.on.threads.create_run.value):
    # A run stamps its metadata (and the thread it creates, if any) and needs an owned thread.
    value.setdefault("metadata", {})["owner"] = ctx.user.identity
    return {"owner": ctx.user.identity}


@auth.on.threads
async def own_threads(ctx: Auth.types.AuthContext, value: Auth.types.on.threads.value):
    # read (runs, streams, joins, state, history), update, delete, search and count
    return {"owner": {"$eq": ctx.user.identity}}


@auth.on.assistants.create
async def create_assistant(ctx: Auth.types.AuthContext, value: Auth.types.on.assistants.create.value):
    value.setdefault("metadata", {})["editors"] = [ctx.user.identity]
    return None


@auth.on(resources="assistants", actions=["update", "delete"])
async def edit_assistant(ctx: Auth.types.AuthContext, value: dict):
    # Anyone reads and runs an assistant; only its editors change or delete it.
    return {"editors": {"$contains": ctx.user.identity}}


@auth.on.crons.create
async def create_cron(ctx: Auth.types.AuthContext, value: Auth.types.on.crons.create.value):
    value.setdefault("metadata", {})["owner"] = ctx.user.identity
    return None


@auth.on.crons
async def own_crons(ctx: Auth.types.AuthContext, value: Auth.types.on.crons.value):
    # read, update, delete, search and count
    return {"owner": ctx.user.identity}


@auth.on.store
async def own_store(ctx: Auth.types.AuthContext, value: dict):
    # Every store route (put, get, search, list_namespaces, delete): a user's items live under
    # their id, as the Agent Server's docs scope the store; a user without permissions has none.
    assert "threads:write" in ctx.permissions, "This user may not use the store"
    value["namespace"] = (ctx.user.identity, *(value["namespace"] or ()))
    return None
