// CompiledFile: the one loader of compiled topology files (docs/compiled-format.md), for Python
// (`aegisfwd._core.compiled.check_compiled`, which load_compiled and CompiledTopology.from_bytes call) and
// for the C ABI alike.
//
// It checks what only a file has (magic, version, length, CRCs, the JSON header's schema and the
// placement of each array), then hands the arrays to the one statement of their invariants:
// TablesView::validate_structure() (tables.cpp) for the arrays an engine reads, the few arrays only
// the file carries below, check_derived_against_facts() (crosscheck.cpp) and check_string_table()
// (string_table.cpp). Messages are the library's CompiledFileError messages, verbatim.
#include "aegisfwd/compiled_file.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <exception>
#include <limits>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "aegisfwd/crosscheck.hpp"
#include "aegisfwd/string_table.hpp"
#include "checks.hpp"

namespace aegisfwd {
namespace {

static_assert(sizeof(double) == 8, "IEEE double expected");

constexpr char kMagic[8] = {'A', 'E', 'G', 'I', 'S', 'F', 'W', 'D'};
constexpr std::size_t kPrefixSize = 32;
constexpr std::int64_t kAlign = 64;
constexpr std::int64_t kInt32Max = std::numeric_limits<std::int32_t>::max();
// Payloads at least this large get their CRC computed on a second thread, alongside the checks.
constexpr std::size_t kParallelCrcBytes = std::size_t{1} << 20;

[[noreturn]] void fail(const std::string& message) { throw CompiledFileError(message); }

std::string quote(const std::string& s) { return "'" + s + "'"; }  // Python's repr of a plain str

// ---- CRC-32 (slicing by 8) -------------------------------------------------------------------
struct CrcTables {
    std::uint32_t t[8][256];
    CrcTables() {
        for (std::uint32_t i = 0; i < 256; ++i) {
            std::uint32_t c = i;
            for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            t[0][i] = c;
        }
        for (std::uint32_t i = 0; i < 256; ++i)
            for (int s = 1; s < 8; ++s) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xFF];
    }
};
const CrcTables& crc_tables() {
    static const CrcTables tables;
    return tables;
}

// ---- a small JSON reader (the header is JSON; Python's json module is the reference) ----------
struct Json {
    enum Type { Null, Bool, Int, Float, String, Array, Object } type = Null;
    bool boolean = false;
    bool int_overflow = false;  // an integer outside int64 (Python would keep it exactly)
    std::int64_t integer = 0;
    double number = 0;
    std::string text;
    std::vector<Json> items;
    std::vector<std::pair<std::string, Json>> members;

    bool is_int() const { return type == Int && !int_overflow; }
    // Python's json keeps the last of duplicate keys.
    const Json* get(const std::string& key) const {
        for (auto it = members.rbegin(); it != members.rend(); ++it)
            if (it->first == key) return &it->second;
        return nullptr;
    }
};

std::string repr(const Json& v);

std::string repr_float(double d) {
    if (std::isnan(d)) return "nan";
    if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
    char buf[32];
    for (int prec = 1; prec <= 17; ++prec) {  // shortest round-trip form, as Python prints floats
        std::snprintf(buf, sizeof buf, "%.*g", prec, d);
        if (std::strtod(buf, nullptr) == d) break;
    }
    std::string s = buf;
    if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
    return s;
}

std::string repr(const Json& v) {
    switch (v.type) {
        case Json::Null: return "None";
        case Json::Bool: return v.boolean ? "True" : "False";
        case Json::Int: return v.int_overflow ? v.text : std::to_string(v.integer);
        case Json::Float: return repr_float(v.number);
        case Json::String: return quote(v.text);
        case Json::Array: {
            std::string s = "[";
            for (std::size_t i = 0; i < v.items.size(); ++i) s += (i ? ", " : "") + repr(v.items[i]);
            return s + "]";
        }
        case Json::Object: {
            std::string s = "{";
            for (std::size_t i = 0; i < v.members.size(); ++i)
                s += (i ? ", " : "") + quote(v.members[i].first) + ": " + repr(v.members[i].second);
            return s + "}";
        }
    }
    return "None";
}

class JsonReader {
public:
    JsonReader(const char* p, std::size_t n) : p_(p), end_(p + n) {}

    Json document() {
        Json v = value(0);
        ws();
        if (p_ != end_) bad("extra data");
        return v;
    }

private:
    [[noreturn]] void bad(const char* what) {
        fail(std::string("header is not valid JSON: ") + what + " at byte " + std::to_string(pos()));
    }
    std::size_t pos() const { return static_cast<std::size_t>(p_ - start_); }
    void ws() {
        while (p_ != end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_;
    }
    bool literal(const char* word) {
        const std::size_t n = std::strlen(word);
        if (static_cast<std::size_t>(end_ - p_) >= n && std::memcmp(p_, word, n) == 0) {
            p_ += n;
            return true;
        }
        return false;
    }

    Json value(int depth) {
        if (depth > 64) bad("nesting too deep");
        ws();
        if (p_ == end_) bad("expecting value");
        Json v;
        const char c = *p_;
        if (c == '{') {
            ++p_;
            v.type = Json::Object;
            ws();
            if (p_ != end_ && *p_ == '}') {
                ++p_;
                return v;
            }
            for (;;) {
                ws();
                if (p_ == end_ || *p_ != '"') bad("expecting property name enclosed in double quotes");
                std::string key = string();
                ws();
                if (p_ == end_ || *p_ != ':') bad("expecting ':' delimiter");
                ++p_;
                Json item = value(depth + 1);
                v.members.emplace_back(std::move(key), std::move(item));
                ws();
                if (p_ != end_ && *p_ == ',') {
                    ++p_;
                    continue;
                }
                if (p_ != end_ && *p_ == '}') {
                    ++p_;
                    return v;
                }
                bad("expecting ',' delimiter");
            }
        }
        if (c == '[') {
            ++p_;
            v.type = Json::Array;
            ws();
            if (p_ != end_ && *p_ == ']') {
                ++p_;
                return v;
            }
            for (;;) {
                v.items.push_back(value(depth + 1));
                ws();
                if (p_ != end_ && *p_ == ',') {
                    ++p_;
                    continue;
                }
                if (p_ != end_ && *p_ == ']') {
                    ++p_;
                    return v;
                }
                bad("expecting ',' delimiter");
            }
        }
        if (c == '"') {
            v.type = Json::String;
            v.text = string();
            return v;
        }
        if (literal("null")) return v;
        if (literal("true") || literal("false")) {
            v.type = Json::Bool;
            v.boolean = p_[-1] == 'e' && p_[-2] == 'u';
            return v;
        }
        if (literal("NaN")) return floating(std::numeric_limits<double>::quiet_NaN());
        if (literal("Infinity")) return floating(std::numeric_limits<double>::infinity());
        if (literal("-Infinity")) return floating(-std::numeric_limits<double>::infinity());
        return number();
    }

    static Json floating(double d) {
        Json v;
        v.type = Json::Float;
        v.number = d;
        return v;
    }

    Json number() {
        const char* begin = p_;
        if (p_ != end_ && *p_ == '-') ++p_;
        if (p_ == end_ || *p_ < '0' || *p_ > '9') bad("expecting value");
        if (*p_ == '0') {
            ++p_;
        } else {
            while (p_ != end_ && *p_ >= '0' && *p_ <= '9') ++p_;
        }
        bool is_float = false;
        if (p_ != end_ && *p_ == '.' && p_ + 1 != end_ && p_[1] >= '0' && p_[1] <= '9') {
            is_float = true;
            ++p_;
            while (p_ != end_ && *p_ >= '0' && *p_ <= '9') ++p_;
        }
        if (p_ != end_ && (*p_ == 'e' || *p_ == 'E')) {
            const char* q = p_ + 1;
            if (q != end_ && (*q == '+' || *q == '-')) ++q;
            if (q != end_ && *q >= '0' && *q <= '9') {
                is_float = true;
                p_ = q;
                while (p_ != end_ && *p_ >= '0' && *p_ <= '9') ++p_;
            }
        }
        std::string text(begin, p_);
        Json v;
        if (is_float) {
            v.type = Json::Float;
            v.number = std::strtod(text.c_str(), nullptr);
            return v;
        }
        v.type = Json::Int;
        v.text = text;
        errno = 0;
        const long long x = std::strtoll(text.c_str(), nullptr, 10);
        if (errno == ERANGE) v.int_overflow = true;
        v.integer = static_cast<std::int64_t>(x);
        return v;
    }

    void utf8(std::string& out, std::uint32_t cp) {
        if (cp < 0x80) {
            out += static_cast<char>(cp);
        } else if (cp < 0x800) {
            out += static_cast<char>(0xC0 | (cp >> 6));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            out += static_cast<char>(0xE0 | (cp >> 12));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        } else {
            out += static_cast<char>(0xF0 | (cp >> 18));
            out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        }
    }

    std::uint32_t hex4() {
        if (end_ - p_ < 4) bad("invalid \\uXXXX escape");
        std::uint32_t x = 0;
        for (int k = 0; k < 4; ++k) {
            const char h = *p_++;
            x <<= 4;
            if (h >= '0' && h <= '9') x |= static_cast<std::uint32_t>(h - '0');
            else if (h >= 'a' && h <= 'f') x |= static_cast<std::uint32_t>(h - 'a' + 10);
            else if (h >= 'A' && h <= 'F') x |= static_cast<std::uint32_t>(h - 'A' + 10);
            else bad("invalid \\uXXXX escape");
        }
        return x;
    }

    std::string string() {
        ++p_;  // opening quote
        std::string out;
        for (;;) {
            if (p_ == end_) bad("unterminated string");
            const unsigned char c = static_cast<unsigned char>(*p_++);
            if (c == '"') return out;
            if (c < 0x20) bad("invalid control character in string");
            if (c != '\\') {
                out += static_cast<char>(c);
                continue;
            }
            if (p_ == end_) bad("unterminated string");
            const char e = *p_++;
            switch (e) {
                case '"': out += '"'; break;
                case '\\': out += '\\'; break;
                case '/': out += '/'; break;
                case 'b': out += '\b'; break;
                case 'f': out += '\f'; break;
                case 'n': out += '\n'; break;
                case 'r': out += '\r'; break;
                case 't': out += '\t'; break;
                case 'u': {
                    std::uint32_t cp = hex4();
                    if (cp >= 0xD800 && cp < 0xDC00 && end_ - p_ >= 6 && p_[0] == '\\' && p_[1] == 'u') {
                        const char* save = p_;
                        p_ += 2;
                        const std::uint32_t lo = hex4();
                        if (lo >= 0xDC00 && lo < 0xE000) cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                        else p_ = save;
                    }
                    utf8(out, cp);
                    break;
                }
                default: bad("invalid \\escape");
            }
        }
    }

    const char* p_;
    const char* end_;
    const char* start_ = p_;
};

bool valid_utf8(const std::uint8_t* s, std::size_t n) {
    std::size_t i = 0;
    while (i < n) {
        const std::uint8_t c = s[i];
        std::size_t len;
        std::uint32_t cp;
        if (c < 0x80) {
            ++i;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            len = 2;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + len > n) return false;
        for (std::size_t k = 1; k < len; ++k) {
            if ((s[i + k] & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp < 0xE000))
            return false;
        i += len;
    }
    return true;
}

// ---- the schema: array specs and counts of format version 1 -----------------------------------
enum class Dtype { i4, i8, u1, u8, f8 };

struct Dtypes {
    const char* name;
    std::size_t size;
};
constexpr Dtypes kDtypes[] = {{"<i4", 4}, {"<i8", 8}, {"|u1", 1}, {"<u8", 8}, {"<f8", 8}};

struct ArraySpec {
    std::string name;
    Dtype dtype;
    std::vector<std::string> dims;  // a count name, "count+1", or a decimal literal
};

const char* const kIdKinds[6][2] = {{"location", "locations"}, {"dc", "dcs"}, {"server", "servers"},
                                    {"pool", "pools"},         {"ip", "ips"}, {"zone", "zones"}};

const std::vector<ArraySpec>& array_specs() {
    static const std::vector<ArraySpec> specs = [] {
        std::vector<ArraySpec> s = {
            {"location_dc_start", Dtype::i4, {"locations+1"}},
            {"location_server_start", Dtype::i4, {"locations+1"}},
            {"dc_location", Dtype::i4, {"dcs"}},
            {"dc_server_start", Dtype::i4, {"dcs+1"}},
            {"server_dc", Dtype::i4, {"servers"}},
            {"server_location", Dtype::i4, {"servers"}},
            {"server_key", Dtype::u8, {"servers"}},
            {"server_initial_state", Dtype::u1, {"servers"}},
            {"ip_pool", Dtype::i4, {"ips"}},
            {"ip_family", Dtype::u1, {"ips"}},
            {"ip_prefix_length", Dtype::u1, {"ips"}},
            {"ip_key", Dtype::u8, {"ips"}},
            {"ip_holder_start", Dtype::i4, {"ips+1"}},
            {"ip_holder_ranges", Dtype::i4, {"holder_ranges", "2"}},
            {"group_ip_start", Dtype::i4, {"groups+1"}},
            {"group_ips", Dtype::i4, {"ips"}},
            {"location_distance", Dtype::f8, {"locations", "locations"}},
            {"zone_pool", Dtype::i4, {"zones"}},
        };
        for (const auto& kind : kIdKinds) {
            s.push_back({std::string(kind[0]) + "_id_bytes", Dtype::u1, {std::string(kind[0]) + "_id_bytes"}});
            s.push_back({std::string(kind[0]) + "_id_offsets", Dtype::i8, {std::string(kind[1]) + "+1"}});
        }
        const std::vector<ArraySpec> derived = {
            {"nearest_order", Dtype::i4, {"locations", "locations"}},
            {"nearest_rank", Dtype::i4, {"locations", "locations"}},
            {"list_location", Dtype::i4, {"lists"}},
            {"list_server_start", Dtype::i4, {"lists+1"}},
            {"list_servers", Dtype::i4, {"list_servers"}},
            {"list_bit_start", Dtype::i8, {"lists+1"}},
            {"list_bits", Dtype::u8, {"list_words"}},
            {"layout_start", Dtype::i4, {"layouts+1"}},
            {"layout_location", Dtype::i4, {"layout_entries"}},
            {"layout_list", Dtype::i4, {"layout_entries"}},
            {"group_layout", Dtype::i4, {"groups"}},
        };
        s.insert(s.end(), derived.begin(), derived.end());
        return s;
    }();
    return specs;
}

const std::vector<std::string>& count_names() {
    static const std::vector<std::string> names = [] {
        std::vector<std::string> n = {"locations", "dcs",   "servers",       "pools",        "ips",
                                      "groups",    "zones", "holder_ranges", "lists",        "list_servers",
                                      "list_words", "layouts", "layout_entries"};
        for (const auto& kind : kIdKinds) n.push_back(std::string(kind[0]) + "_id_bytes");
        return n;
    }();
    return names;
}

bool is_int32_count(const std::string& name) {
    return name != "list_words" && (name.size() < 9 || name.compare(name.size() - 9, 9, "_id_bytes") != 0);
}

// ---- typed views over the payload --------------------------------------------------------------
struct RawArray {
    const std::uint8_t* data = nullptr;
    std::size_t count = 0;  // elements
};

template <class T>
ArrayView<T> view(const RawArray& a) {
    return ArrayView<T>{reinterpret_cast<const T*>(a.data), a.count};
}

// ---- the invariants of arrays only the file carries (the engine's arrays: TablesView::validate) ---
// `t` has passed validate_structure(): its index ranges are trusted here.
void check_file_only_arrays(const TablesView& t, const TableCounts& tc, const ArrayView<std::uint8_t>& prefix,
                            const ArrayView<std::int32_t>& zone_pool, const ArrayView<std::int64_t>& bit_start,
                            const ArrayView<std::uint64_t>& list_bits, std::int64_t list_words) {
    for (std::size_t k = 0; k < prefix.size; ++k)
        if (prefix[k] > (t.ip_family[k] == 4 ? 32 : 128))
            checks::fail("ip_prefix_length", "holds " + std::to_string(prefix[k]) + " for an IPv" +
                                                 std::to_string(t.ip_family[k]) + " entry at " + checks::row(k));
    checks::indices("zone_pool", zone_pool, 0, tc.pools);
    // Each list has a bitset of its location's servers: ceil(servers / 64) words, no bit set past
    // the last server (every list has at least one word, since its servers lie in its location).
    const auto C = static_cast<std::size_t>(tc.lists);
    checks::offsets("list_bit_start", bit_start, C, list_words);
    const auto location_size = [&](std::size_t c) {
        const auto loc = static_cast<std::size_t>(t.list_location[c]);
        return static_cast<std::int64_t>(t.location_server_start[loc + 1]) - t.location_server_start[loc];
    };
    for (std::size_t c = 0; c < C; ++c)
        if (bit_start[c + 1] - bit_start[c] != (location_size(c) + 63) / 64)
            checks::fail("list_bit_start", "disagrees with the word counts of the lists' locations at " +
                                               checks::row(c) + " (list " + std::to_string(c) + " of location " +
                                               std::to_string(t.list_location[c]) + ")");
    for (std::size_t c = 0; c < C; ++c) {
        const auto rem = static_cast<std::uint64_t>(location_size(c) % 64);
        const std::uint64_t tail = rem == 0 ? 0 : ~((std::uint64_t{1} << rem) - 1);
        const auto w = static_cast<std::size_t>(bit_start[c + 1] - 1);
        if (list_bits[w] & tail)
            checks::fail("list_bits", "sets a bit past the last server of a location at " + checks::row(w) +
                                          " (list " + std::to_string(c) + " of location " +
                                          std::to_string(t.list_location[c]) + ")");
    }
}

}  // namespace

std::uint32_t crc32(const void* data, std::size_t size, std::uint32_t crc) noexcept {
    const auto& t = crc_tables().t;
    const auto* p = static_cast<const std::uint8_t*>(data);
    crc = ~crc;
    while (size >= 8) {
        std::uint32_t lo, hi;
        std::memcpy(&lo, p, 4);
        std::memcpy(&hi, p + 4, 4);
        lo ^= crc;
        crc = t[7][lo & 0xFF] ^ t[6][(lo >> 8) & 0xFF] ^ t[5][(lo >> 16) & 0xFF] ^ t[4][lo >> 24] ^
              t[3][hi & 0xFF] ^ t[2][(hi >> 8) & 0xFF] ^ t[1][(hi >> 16) & 0xFF] ^ t[0][hi >> 24];
        p += 8;
        size -= 8;
    }
    while (size--) crc = t[0][(crc ^ *p++) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

CompiledFile::~CompiledFile() {
    if (map_ != nullptr) ::munmap(map_, map_size_);
}

std::unique_ptr<CompiledFile> CompiledFile::open(const std::string& path, bool verify) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw CompiledFileIoError(path + ": cannot open: " + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        const int err = errno;
        ::close(fd);
        throw CompiledFileIoError(path + ": cannot stat: " + std::strerror(err));
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        throw CompiledFileIoError(path + ": not a regular file");
    }
    const auto size = static_cast<std::size_t>(st.st_size);
    if (size == 0) {
        ::close(fd);
        throw CompiledFileError(path + ": truncated: file has 0 bytes");
    }
    void* map = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
    const int err = errno;
    ::close(fd);
    if (map == MAP_FAILED) throw CompiledFileIoError(path + ": cannot map: " + std::strerror(err));
    std::unique_ptr<CompiledFile> f(new CompiledFile());
    f->map_ = map;
    f->map_size_ = size;
    f->data_ = static_cast<const std::uint8_t*>(map);
    f->size_ = size;
    try {
        f->parse(verify);
    } catch (const CompiledFileError& e) {
        throw CompiledFileError(path + ": " + e.what());
    }
    return f;
}

std::unique_ptr<CompiledFile> CompiledFile::from_buffer(const void* data, std::size_t size, bool verify) {
    if (data == nullptr && size != 0) throw CompiledFileError("the buffer is a null pointer");
    if (reinterpret_cast<std::uintptr_t>(data) % 8 != 0)
        throw CompiledFileError("the buffer is not 8-byte aligned: the arrays cannot be read in place");
    std::unique_ptr<CompiledFile> f(new CompiledFile());
    f->data_ = static_cast<const std::uint8_t*>(data);
    f->size_ = size;
    f->parse(verify);
    return f;
}

std::int64_t CompiledFile::count(const std::string& name) const {
    const auto it = counts_.find(name);
    return it == counts_.end() ? -1 : it->second;
}

std::size_t CompiledFile::id_count(IdKind kind) const noexcept {
    const auto& off = id_offsets_[static_cast<int>(kind)];
    return off.size == 0 ? 0 : off.size - 1;
}

std::string_view CompiledFile::id(IdKind kind, std::size_t index) const noexcept {
    const int k = static_cast<int>(kind);
    const auto& off = id_offsets_[k];
    const auto first = static_cast<std::size_t>(off[index]);
    const auto end = static_cast<std::size_t>(off[index + 1]);
    return {reinterpret_cast<const char*>(id_bytes_[k].data) + first, end - first};
}

void CompiledFile::parse(bool verify) {
    const std::uint8_t* const v = data_;
    const std::size_t n = size_;
    // ---- prefix ------------------------------------------------------------------------------------
    if (n >= sizeof kMagic && std::memcmp(v, kMagic, sizeof kMagic) != 0) {
        std::string shown = "b'";
        static const char* hex = "0123456789abcdef";
        for (std::size_t i = 0; i < sizeof kMagic; ++i) {  // Python's bytes repr
            const unsigned char c = v[i];
            if (c == '\\' || c == '\'') {
                shown += '\\';
                shown += static_cast<char>(c);
            } else if (c == '\t') {
                shown += "\\t";
            } else if (c == '\n') {
                shown += "\\n";
            } else if (c == '\r') {
                shown += "\\r";
            } else if (c >= 0x20 && c < 0x7F) {
                shown += static_cast<char>(c);
            } else {
                shown += "\\x";
                shown += hex[c >> 4];
                shown += hex[c & 15];
            }
        }
        fail("bad magic " + shown + "': not a compiled aegisfwd topology");
    }
    if (n < kPrefixSize)
        fail("truncated: file has " + std::to_string(n) + " bytes, fewer than the " + std::to_string(kPrefixSize) +
             "-byte prefix");
    std::uint32_t version, hlen, header_crc, payload_crc;
    std::uint64_t total;
    std::memcpy(&version, v + 8, 4);
    std::memcpy(&hlen, v + 12, 4);
    std::memcpy(&total, v + 16, 8);
    std::memcpy(&header_crc, v + 24, 4);
    std::memcpy(&payload_crc, v + 28, 4);
    if (version != kCompiledFormatVersion)
        fail("unsupported format version " + std::to_string(version) + " (this build reads version " +
             std::to_string(kCompiledFormatVersion) + ")");
    if (n < total) fail("truncated: file has " + std::to_string(n) + " bytes, header says " + std::to_string(total));
    if (n > total)
        fail("file has " + std::to_string(n) + " bytes, header says " + std::to_string(total) + ": trailing data");
    if (kPrefixSize + hlen > total)
        fail("header length " + std::to_string(hlen) + " runs past the end of the " + std::to_string(total) +
             "-byte file");
    const std::uint8_t* header_bytes = v + kPrefixSize;
    if (crc32(header_bytes, hlen) != header_crc) fail("header CRC mismatch: the header is corrupt");
    if (!valid_utf8(header_bytes, hlen)) fail("header is not valid JSON: the header is not UTF-8");
    const Json header = JsonReader(reinterpret_cast<const char*>(header_bytes), hlen).document();
    const std::int64_t payload_start = (static_cast<std::int64_t>(kPrefixSize + hlen) + kAlign - 1) / kAlign * kAlign;
    const auto total_i = static_cast<std::int64_t>(total);

    // ---- header schema -------------------------------------------------------------------------------
    if (header.type != Json::Object) fail("header schema: the header is not a JSON object");
    for (const char* key : {"hash_scheme", "distance_unit", "counts", "meta", "arrays"})
        if (header.get(key) == nullptr) fail(std::string("header schema: missing ") + quote(key));
    const Json& scheme = *header.get("hash_scheme");
    if (!scheme.is_int() || scheme.integer != static_cast<std::int64_t>(kHashSchemeVersion))
        fail("header schema: hash scheme " + repr(scheme) + " is not supported (this build implements " +
             std::to_string(kHashSchemeVersion) + ")");
    const Json& unit = *header.get("distance_unit");
    if (unit.type != Json::String || (unit.text != "km" && unit.text != "ms"))
        fail("header schema: distance unit " + repr(unit) + " is not km or ms");
    if (header.get("meta")->type != Json::Object) fail("header schema: 'meta' is not an object");
    const Json& counts = *header.get("counts");
    if (counts.type != Json::Object) fail("header schema: 'counts' is not an object");
    std::map<std::string, std::int64_t> c;
    for (const auto& name : count_names()) {
        const Json* value = counts.get(name);
        const bool negative = value != nullptr && value->type == Json::Int &&
                              (value->int_overflow ? value->text[0] == '-' : value->integer < 0);
        if (value == nullptr || value->type != Json::Int || negative)
            fail("header schema: count " + quote(name) + " is " + (value ? repr(*value) : "None") +
                 ", expected an integer >= 0");
        if (is_int32_count(name) && (value->int_overflow || value->integer >= kInt32Max))
            fail("header schema: count " + quote(name) + " = " + repr(*value) + " does not fit int32 indices");
        if (value->int_overflow) fail("header schema: count " + quote(name) + " = " + value->text + " is too large");
        c[name] = value->integer;
    }
    if (c["groups"] != 2 * c["pools"])
        fail("header schema: " + std::to_string(c["groups"]) + " groups for " + std::to_string(c["pools"]) +
             " pools (expected 2 per pool)");
    const Json& entries = *header.get("arrays");
    if (entries.type != Json::Object) fail("header schema: 'arrays' is not an object");
    const auto& specs = array_specs();
    for (const auto& m : entries.members) {
        bool known = false;
        for (const auto& s : specs) known = known || s.name == m.first;
        if (!known) fail("header schema: unexpected array " + quote(m.first));
    }
    std::map<std::string, RawArray> raw;
    struct Span {
        std::int64_t first, end;
        std::string name;
    };
    std::vector<Span> spans;
    for (const auto& spec : specs) {
        const Json* entry = entries.get(spec.name);
        if (entry == nullptr) fail("header schema: array " + quote(spec.name) + " is missing");
        if (entry->type != Json::Object) fail("header schema: array " + quote(spec.name) + ": entry is not an object");
        const Dtypes& dt = kDtypes[static_cast<int>(spec.dtype)];
        const Json* dtype = entry->get("dtype");
        if (dtype == nullptr || dtype->type != Json::String || dtype->text != dt.name)
            fail("header schema: array " + quote(spec.name) + " has dtype " + (dtype ? repr(*dtype) : "None") +
                 ", expected " + quote(dt.name));
        std::vector<std::int64_t> expected;
        for (const auto& dim : spec.dims) {
            if (dim[0] >= '0' && dim[0] <= '9') expected.push_back(std::stoll(dim));
            else if (dim.size() > 2 && dim.compare(dim.size() - 2, 2, "+1") == 0)
                expected.push_back(c[dim.substr(0, dim.size() - 2)] + 1);
            else expected.push_back(c[dim]);
        }
        const Json* shape = entry->get("shape");
        bool shape_ok = shape != nullptr && shape->type == Json::Array && shape->items.size() == expected.size();
        for (std::size_t k = 0; shape_ok && k < expected.size(); ++k)
            shape_ok = shape->items[k].is_int() && shape->items[k].integer == expected[k];
        if (!shape_ok) {
            std::string e = "[";
            for (std::size_t k = 0; k < expected.size(); ++k) e += (k ? ", " : "") + std::to_string(expected[k]);
            fail("header schema: array " + quote(spec.name) + " has shape " + (shape ? repr(*shape) : "None") +
                 ", counts say " + e + "]");
        }
        // Counts are < 2^31 (or byte counts checked against the file size below), so no overflow
        // before the comparison with the file: the largest product is L*L*8 < 2^65 only for
        // absurd L, which the int32 bound on L keeps under 2^65 -- use long double to be safe.
        long double size_ld = static_cast<long double>(dt.size);
        for (const auto d : expected) size_ld *= static_cast<long double>(d);
        const Json* offset = entry->get("offset");
        const Json* nbytes = entry->get("nbytes");
        if (nbytes == nullptr || !nbytes->is_int() || static_cast<long double>(nbytes->integer) != size_ld)
            fail("header schema: array " + quote(spec.name) + " has nbytes " + (nbytes ? repr(*nbytes) : "None") +
                 ", its shape needs " + std::to_string(static_cast<unsigned long long>(size_ld)));
        if (offset == nullptr || !offset->is_int() || offset->integer % kAlign != 0)
            fail("header schema: array " + quote(spec.name) + " offset " + (offset ? repr(*offset) : "None") +
                 " is not " + std::to_string(kAlign) + "-byte aligned");
        const std::int64_t off = offset->integer, nb = nbytes->integer;
        if (off < payload_start || off > total_i || nb > total_i - off)
            fail("header schema: array " + quote(spec.name) + " at [" + std::to_string(off) + ", " +
                 std::to_string(off + nb) + ") lies outside the payload [" + std::to_string(payload_start) + ", " +
                 std::to_string(total_i) + ")");
        if (nb) spans.push_back({off, off + nb, spec.name});
        raw[spec.name] = RawArray{v + off, static_cast<std::size_t>(nb) / dt.size};
    }
    std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) {
        return std::tie(a.first, a.end, a.name) < std::tie(b.first, b.end, b.name);
    });
    for (std::size_t k = 0; k + 1 < spans.size(); ++k)
        if (spans[k + 1].first < spans[k].end)
            fail("header schema: arrays " + quote(spans[k].name) + " and " + quote(spans[k + 1].name) + " overlap");

    // ---- the arrays ----------------------------------------------------------------------------------
    const auto i4 = [&](const char* name) { return view<std::int32_t>(raw.at(name)); };
    TablesView& t = tables_;
    t.location_dc_start = i4("location_dc_start");
    t.location_server_start = i4("location_server_start");
    t.dc_location = i4("dc_location");
    t.dc_server_start = i4("dc_server_start");
    t.server_dc = i4("server_dc");
    t.server_location = i4("server_location");
    t.server_key = view<std::uint64_t>(raw.at("server_key"));
    t.server_initial_state = view<std::uint8_t>(raw.at("server_initial_state"));
    t.ip_pool = i4("ip_pool");
    t.ip_family = view<std::uint8_t>(raw.at("ip_family"));
    t.ip_key = view<std::uint64_t>(raw.at("ip_key"));
    t.ip_holder_start = i4("ip_holder_start");
    t.ip_holder_ranges = i4("ip_holder_ranges");
    t.group_ip_start = i4("group_ip_start");
    t.group_ips = i4("group_ips");
    t.location_distance = view<double>(raw.at("location_distance"));
    t.nearest_order = i4("nearest_order");
    t.nearest_rank = i4("nearest_rank");
    t.list_location = i4("list_location");
    t.list_server_start = i4("list_server_start");
    t.list_servers = i4("list_servers");
    t.layout_start = i4("layout_start");
    t.layout_location = i4("layout_location");
    t.layout_list = i4("layout_list");
    t.group_layout = i4("group_layout");
    list_bit_start_ = view<std::int64_t>(raw.at("list_bit_start"));
    list_bits_ = view<std::uint64_t>(raw.at("list_bits"));
    counts_ = std::move(c);
    distance_unit_ = unit.text;
    for (int k = 0; k < 6; ++k) {
        const std::string kind = kIdKinds[k][0];
        id_bytes_[k] = view<std::uint8_t>(raw.at(kind + "_id_bytes"));
        id_offsets_[k] = view<std::int64_t>(raw.at(kind + "_id_offsets"));
    }
    ip_prefix_length_ = view<std::uint8_t>(raw.at("ip_prefix_length"));
    zone_pool_ = i4("zone_pool");

    // ---- payload CRC and the arrays' invariants -------------------------------------------------------
    // The CRC of a large payload runs on a second thread while this one checks the arrays (checks
    // that are safe on any bytes: each index is range-checked before it indexes anything). A CRC
    // mismatch is reported in preference to whatever the checks found, since it is the root cause.
    const std::uint8_t* payload = v + payload_start;
    const auto payload_size = static_cast<std::size_t>(total_i - payload_start);
    std::uint32_t crc = 0;
    std::thread worker;
    if (verify && payload_size >= kParallelCrcBytes) {
        try {
            worker = std::thread([&crc, payload, payload_size] { crc = crc32(payload, payload_size); });
        } catch (const std::system_error&) {  // no thread to be had: compute it here
            crc = crc32(payload, payload_size);
        }
    } else if (verify) {
        crc = crc32(payload, payload_size);
    }
    std::exception_ptr array_error;
    try {
        check_arrays();
    } catch (...) {
        array_error = std::current_exception();
    }
    if (worker.joinable()) worker.join();
    if (verify && crc != payload_crc) fail("payload CRC mismatch: the tables are corrupt");
    if (!array_error) return;
    try {
        std::rethrow_exception(array_error);
    } catch (const std::invalid_argument& e) {
        fail(e.what());
    }
}

void CompiledFile::check_arrays() const {
    // The engine's arrays (one statement of their invariants, tables.cpp), the file's own arrays,
    // then the derived tables against the facts (crosscheck.cpp) and the id tables.
    const TableCounts tc = tables_.validate_structure();
    check_file_only_arrays(tables_, tc, ip_prefix_length_, zone_pool_, list_bit_start_, list_bits_,
                           counts_.at("list_words"));
    check_derived_against_facts(tables_, tc);
    for (int k = 0; k < 6; ++k) {
        const std::string kind = kIdKinds[k][0];
        check_string_table((kind + "_id_bytes").c_str(), (kind + "_id_offsets").c_str(), id_bytes_[k], id_offsets_[k]);
    }
}

std::vector<ArraySchema> compiled_array_schema() {
    std::vector<ArraySchema> out;
    for (const auto& spec : array_specs())
        out.push_back({spec.name, kDtypes[static_cast<int>(spec.dtype)].name, spec.dims});
    return out;
}

std::vector<std::string> compiled_count_names() { return count_names(); }

}  // namespace aegisfwd
