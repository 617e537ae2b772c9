-- aegisfwd.lua: egress decisions inside nginx (lua-nginx-module, LuaJIT FFI over libaegisfwd).
--
-- Each worker opens the compiled topology once (init_worker_by_lua_block: aegisfwd.init{...}); the
-- file is memory-mapped read-only, so every worker shares one copy through the page cache. Per
-- request, aegisfwd.rewrite() decides where the origin connection egresses and sets the nginx
-- variable $aegis_src for `proxy_bind $aegis_src;`, or answers 503 when the decision is UNAVAILABLE
-- (fail closed: never connect from an address that is not the customer's dedicated one).
--
-- The declarations below are a copy of aegisfwd.h (the parts used here); ABI_VERSION is passed to
-- aegisfwd_open_abi, so a library of another ABI refuses to open rather than be misread.
local ffi = require("ffi")

ffi.cdef [[
typedef struct aegisfwd_engine aegisfwd_engine;
typedef struct aegisfwd_decision {
    uint8_t tier; uint8_t reserved_[3];
    int32_t server; int32_t dc; int32_t location; int32_t ip; int32_t reserved2_;
    double distance;
} aegisfwd_decision;
const char* aegisfwd_version(void);
const char* aegisfwd_last_error(void);
const char* aegisfwd_status_name(int status);
int aegisfwd_open_abi(uint32_t abi_version, const char* path, uint32_t flags, const char* isa,
                      aegisfwd_engine** out);
void aegisfwd_close(aegisfwd_engine* engine);
int aegisfwd_lookup(const aegisfwd_engine* engine, int kind, const char* id, size_t len, int32_t* index);
int aegisfwd_decide(const aegisfwd_engine* engine, int32_t server, int32_t pool, uint8_t family,
                    uint64_t flow, aegisfwd_decision* out);
int aegisfwd_client_flow_key(const char* client_ip, size_t len, uint32_t port, uint64_t* flow);
int aegisfwd_ip_text(const aegisfwd_engine* engine, int32_t ip, char* buf, size_t size, size_t* needed);
int aegisfwd_set_server_state(aegisfwd_engine* engine, int32_t server, int state);
int aegisfwd_set_dc_state(aegisfwd_engine* engine, int32_t dc, int state);
int aegisfwd_set_location_state(aegisfwd_engine* engine, int32_t location, int state);
int aegisfwd_set_states(aegisfwd_engine* engine, const uint8_t* states, size_t n);
int aegisfwd_get_states(const aegisfwd_engine* engine, uint8_t* states, size_t n);
typedef struct aegisfwd_counts {
    int32_t locations; int32_t dcs; int32_t servers; int32_t pools; int32_t ips; int32_t zones;
} aegisfwd_counts;
int aegisfwd_counts_get(const aegisfwd_engine* engine, aegisfwd_counts* out);
unsigned long long strtoull(const char* s, char** end, int base);
]]

local M = {
    ABI_VERSION = 1,
    TIERS = { [0] = "LOCAL", "SAME_DC", "SAME_LOCATION", "REMOTE", "UNAVAILABLE", [255] = "INVALID" },
}
local KIND_LOCATION, KIND_DC, KIND_SERVER, KIND_POOL, KIND_ZONE = 0, 1, 2, 3, 5
local STATE_CODES = { up = 0, draining = 1, down = 2 }
local TIER_UNAVAILABLE, TIER_INVALID = 4, 255

local lib, engine, self_server, n_servers, states_buf
local shared, applied_version = nil, 0  -- live state shared by the workers (see M.sync)
local ip_text = {}          -- ip index -> address text for proxy_bind (built on first use)
local index_cache = {}      -- "kind:id" -> index (ids are looked up once per worker)
local decision = ffi.new("aegisfwd_decision")
local index_out = ffi.new("int32_t[1]")
local text_buf = ffi.new("char[64]")
local flow_out = ffi.new("uint64_t[1]")

local function fail(what, status)
    error(string.format("aegisfwd: %s: %s: %s", what, ffi.string(lib.aegisfwd_status_name(status)),
        ffi.string(lib.aegisfwd_last_error())), 2)
end

-- opts.library: path of libaegisfwd.so (`aegisfwd config --library`)
-- opts.file:    compiled topology (`aegisfwd compile`)
-- opts.server:  the id of the server this nginx runs on (the ingress server of every decision)
function M.init(opts)
    lib = ffi.load(opts.library)
    local out = ffi.new("aegisfwd_engine*[1]")
    local st = lib.aegisfwd_open_abi(M.ABI_VERSION, opts.file, 0, nil, out)
    if st ~= 0 then fail("open " .. opts.file, st) end
    engine = ffi.gc(out[0], lib.aegisfwd_close)
    self_server = M.index(KIND_SERVER, opts.server)
    if self_server == nil then error("aegisfwd: this server's id " .. opts.server .. " is not in " .. opts.file) end
    local counts = ffi.new("aegisfwd_counts")
    lib.aegisfwd_counts_get(engine, counts)
    n_servers = counts.servers
    states_buf = ffi.new("uint8_t[?]", math.max(n_servers, 1))
    if opts.shared_dict then
        shared = ngx.shared[opts.shared_dict]
        if shared == nil then error("aegisfwd: no lua_shared_dict " .. opts.shared_dict) end
        M.sync()
        -- Each worker has its own engine: a timer applies the states other workers published.
        local ok, err = ngx.timer.every(opts.sync_interval or 0.05, function(premature)
            if not premature then M.sync() end
        end)
        if not ok then error("aegisfwd: cannot start the state timer: " .. tostring(err)) end
    end
    return M  -- so that `aegisfwd = require("aegisfwd").init{...}` keeps the module
end

-- Index of an id of `kind`, or nil when the topology has no such id.
function M.index(kind, id)
    local key = kind .. ":" .. id
    local cached = index_cache[key]
    if cached ~= nil then return cached or nil end
    local st = lib.aegisfwd_lookup(engine, kind, id, #id, index_out)
    local value = st == 0 and index_out[0] or false
    index_cache[key] = value
    return value or nil
end

local function address_of(ip)
    local text = ip_text[ip]
    if text == nil then
        local st = lib.aegisfwd_ip_text(engine, ip, text_buf, 64, nil)
        if st ~= 0 then fail("ip_text", st) end
        -- An IPv6 prefix entry ("2001:db8:a::/48"): bind its first address; a deployment that
        -- spreads flows over the prefix picks the host bits itself.
        text = ffi.string(text_buf):gsub("/%d+$", "")
        ip_text[ip] = text
    end
    return text
end

-- Decide for pool index `pool`, address family 4/6 of the origin connection, 64-bit flow key.
-- Returns the tier name and the source address ("" unless the tier is a real one).
function M.decide(pool, family, flow)
    local tier = lib.aegisfwd_decide(engine, self_server, pool, family, flow, decision)
    if tier == TIER_UNAVAILABLE or tier == TIER_INVALID then return M.TIERS[tier], "" end
    return M.TIERS[tier], address_of(decision.ip)
end

-- The flow key: the X-Aegis-Flow request header (decimal uint64) when the edge already assigned
-- one, otherwise the key of the client's address and port (aegisfwd_client_flow_key: the key
-- `aegisfwd evaluate` derives from ClientIP and ClientSrcPort, so the logs predict these decisions).
-- A client without an address and port (a unix socket) gets key 0: still a decision, one for all.
local function flow_key()
    local given = ngx.var.http_x_aegis_flow
    if given ~= nil then return lib.strtoull(given, nil, 10) end
    local addr, port = ngx.var.remote_addr or "", tonumber(ngx.var.remote_port or "")
    if port == nil or lib.aegisfwd_client_flow_key(addr, #addr, port, flow_out) ~= 0 then return 0ULL end
    return flow_out[0]
end

-- rewrite_by_lua_block handler: the pool comes from the X-Aegis-Pool header (a pool id) or, failing
-- that, from the Host header as a zone name; the origin connection is IPv4 unless
-- $aegis_family says 6.
function M.rewrite()
    local pool
    local pool_id = ngx.var.http_x_aegis_pool
    if pool_id ~= nil then
        pool = M.index(KIND_POOL, pool_id)
    else
        pool = M.index(KIND_ZONE, ngx.var.host or "")
    end
    if pool == nil then
        ngx.header["X-Aegis-Tier"] = "INVALID"
        return ngx.exit(421) -- misdirected: not a zone (or pool) with dedicated egress IPs here
    end
    local family = tonumber(ngx.var.aegis_family) or 4
    local tier, source = M.decide(pool, family, flow_key())
    ngx.header["X-Aegis-Tier"] = tier
    if source == "" then
        return ngx.exit(ngx.HTTP_SERVICE_UNAVAILABLE) -- fail closed
    end
    ngx.var.aegis_src = source
end

-- ---- live state ------------------------------------------------------------------------------
-- Server states change at run time (a health checker, an operator). Every worker has its own
-- engine, so a change is published as the full state vector (one byte per server) with a version in
-- a lua_shared_dict; each worker applies a newer vector with one atomic aegisfwd_set_states.
-- Publishing the whole vector (not a log of changes) means no change is ever lost or reordered.

-- Applies the shared state vector if it is newer than the one this worker has.
function M.sync()
    if shared == nil then return end
    local version = shared:get("version") or 0
    if version == applied_version then return end
    local states = shared:get("states")
    if states ~= nil and #states == n_servers then
        local st = lib.aegisfwd_set_states(engine, ffi.cast("const uint8_t*", states), n_servers)
        if st ~= 0 then fail("set_states", st) end
    end
    applied_version = version
end

-- Sets `state` ("up", "draining", "down") on a server, DC or location id (servers first, as
-- af.Engine.set_state resolves ids), here and for every worker. Returns true, or nil and a reason.
function M.set_state(target, state)
    local code = STATE_CODES[state]
    if code == nil then return nil, "state must be up, draining or down" end
    local setter, index
    index = M.index(KIND_SERVER, target)
    if index ~= nil then setter = lib.aegisfwd_set_server_state end
    if setter == nil then
        index = M.index(KIND_DC, target)
        if index ~= nil then setter = lib.aegisfwd_set_dc_state end
    end
    if setter == nil then
        index = M.index(KIND_LOCATION, target)
        if index ~= nil then setter = lib.aegisfwd_set_location_state end
    end
    if setter == nil then return nil, "no server, DC or location " .. target end
    if shared == nil then  -- no shared dict configured: this worker only
        local st = setter(engine, index, code)
        if st ~= 0 then return nil, ffi.string(lib.aegisfwd_last_error()) end
        return true
    end
    -- One publisher at a time: start from the latest published vector, change it, publish.
    local deadline = ngx.now() + 2
    while not shared:add("lock", true, 2) do
        if ngx.now() > deadline then return nil, "state lock busy" end
        ngx.sleep(0.001)
    end
    M.sync()
    local st = setter(engine, index, code)
    if st == 0 then st = lib.aegisfwd_get_states(engine, states_buf, n_servers) end
    if st == 0 then
        shared:set("states", ffi.string(states_buf, n_servers))
        applied_version = shared:incr("version", 1, 0)
    end
    shared:delete("lock")
    if st ~= 0 then return nil, ffi.string(lib.aegisfwd_last_error()) end
    return true
end

-- content_by_lua_block handler of the admin location: POST ?target=ID&state=up|draining|down.
function M.admin()
    local args = ngx.req.get_uri_args()
    if ngx.req.get_method() ~= "POST" or type(args.target) ~= "string" or type(args.state) ~= "string" then
        ngx.status = ngx.HTTP_BAD_REQUEST
        return ngx.say("POST ?target=<server, DC or location id>&state=up|draining|down")
    end
    local ok, err = M.set_state(args.target, args.state)
    if not ok then
        ngx.status = ngx.HTTP_BAD_REQUEST
        return ngx.say(err)
    end
    ngx.say("ok")
end

return M
