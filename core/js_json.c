/* SPDX-License-Identifier: Apache-2.0 */
/* JetStream JSON: stream configurations parsed and printed with nats-server
 * 2.9.10's field names, defaults and validation messages, API error
 * objects, timestamps in Go's RFC 3339 form, and base64. Pure functions,
 * callable from any thread. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "core/js_int.h"
#include "core/subject.h"

void js_err_set(struct js_err *err, int code, int err_code, const char *fmt, ...) {
  err->code = code;
  err->err_code = err_code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->description, sizeof err->description, fmt, ap);
  va_end(ap);
}

struct cJSON *js_response(const char *type) {
  cJSON *obj = cJSON_CreateObject();
  if (obj != NULL) cJSON_AddStringToObject(obj, "type", type);
  return obj;
}

void js_response_error(struct cJSON *resp, const struct js_err *err) {
  cJSON *e = cJSON_AddObjectToObject(resp, "error");
  if (e == NULL) return;
  cJSON_AddNumberToObject(e, "code", err->code);
  cJSON_AddNumberToObject(e, "err_code", err->err_code);
  cJSON_AddStringToObject(e, "description", err->description);
}

bool js_name_valid(const char *name) {
  if (name[0] == '\0' || strlen(name) > JS_NAME_MAX) return false;
  for (const char *p = name; *p != '\0'; p++) {
    if (*p == '.' || *p == '*' || *p == '>' || *p <= ' ' || *p == 0x7f) return false;
  }
  return true;
}

/* Reads the integer text that add_int() stores as a raw item. */
static bool parse_raw_int(const char *text, int64_t *out) {
  char *end;
  errno = 0;
  long long v = strtoll(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0') return false;
  *out = v;
  return true;
}

/* Reads an optional integer field; a present field of another type is a
 * JSON type error, as Go's decoder reports it. */
static bool get_int(const cJSON *obj, const char *key, int64_t *out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (v == NULL || cJSON_IsNull(v)) return true;
  if (cJSON_IsRaw(v)) return parse_raw_int(v->valuestring, out);
  if (!cJSON_IsNumber(v)) return false;
  /* Go's decoder rejects a number that does not fit in int64. */
  if (!(v->valuedouble > -9223372036854775808.0) || v->valuedouble >= 9223372036854775808.0)
    return false;
  *out = (int64_t)v->valuedouble;
  return true;
}

static bool get_bool(const cJSON *obj, const char *key, bool *out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (v == NULL || cJSON_IsNull(v)) return true;
  if (!cJSON_IsBool(v)) return false;
  *out = cJSON_IsTrue(v);
  return true;
}

/* Maps an optional string field to one of names; returns false for an
 * unknown value, which nats-server rejects as invalid JSON. */
static bool get_enum(const cJSON *obj, const char *key, const char *const *names, int count,
                     int *out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (v == NULL || cJSON_IsNull(v)) return true;
  if (!cJSON_IsString(v)) return false;
  for (int i = 0; i < count; i++) {
    if (strcmp(v->valuestring, names[i]) == 0) {
      *out = i;
      return true;
    }
  }
  return false;
}

static const char *const retention_names[] = {"limits", "interest", "workqueue"};
static const char *const discard_names[] = {"old", "new"};
static const char *const storage_names[] = {"file", "memory"};

static int parse_subjects(const cJSON *obj, struct js_stream_config *cfg) {
  const cJSON *subjects = cJSON_GetObjectItemCaseSensitive(obj, "subjects");
  if (subjects == NULL || cJSON_IsNull(subjects)) return 0;
  if (!cJSON_IsArray(subjects)) return -1;
  int n = cJSON_GetArraySize(subjects);
  if (n == 0) return 0;
  cfg->subjects = calloc((size_t)n, sizeof *cfg->subjects);
  if (cfg->subjects == NULL) return -1;
  const cJSON *s;
  cJSON_ArrayForEach(s, subjects) {
    if (!cJSON_IsString(s)) return -1;
    cfg->subjects[cfg->subject_count] = strdup(s->valuestring);
    if (cfg->subjects[cfg->subject_count] == NULL) return -1;
    cfg->subject_count++;
  }
  return 0;
}

/* Decodes the optional republish object. An empty src or dest is kept as
 * "" so that check_republish rejects it as nats-server does. */
static int decode_republish(const cJSON *obj, struct js_stream_config *cfg) {
  const cJSON *republish = cJSON_GetObjectItemCaseSensitive(obj, "republish");
  if (republish == NULL || cJSON_IsNull(republish)) return 0;
  if (!cJSON_IsObject(republish)) return -1;
  const cJSON *src = cJSON_GetObjectItemCaseSensitive(republish, "src");
  const cJSON *dest = cJSON_GetObjectItemCaseSensitive(republish, "dest");
  if ((src != NULL && !cJSON_IsNull(src) && !cJSON_IsString(src)) ||
      (dest != NULL && !cJSON_IsNull(dest) && !cJSON_IsString(dest)))
    return -1;
  cfg->republish_src = strdup(cJSON_IsString(src) ? src->valuestring : "");
  cfg->republish_dest = strdup(cJSON_IsString(dest) ? dest->valuestring : "");
  if (cfg->republish_src == NULL || cfg->republish_dest == NULL) return -1;
  return get_bool(republish, "headers_only", &cfg->republish_headers_only) ? 0 : -1;
}

/* Decodes the JSON fields; returns -1 where Go's decoder would fail. */
static int decode_config(const cJSON *obj, struct js_stream_config *cfg) {
  const cJSON *name = cJSON_GetObjectItemCaseSensitive(obj, "name");
  if (name != NULL && !cJSON_IsNull(name)) {
    if (!cJSON_IsString(name) || strlen(name->valuestring) > JS_NAME_MAX) return -1;
    snprintf(cfg->name, sizeof cfg->name, "%s", name->valuestring);
  }
  const cJSON *desc = cJSON_GetObjectItemCaseSensitive(obj, "description");
  if (cJSON_IsString(desc) && desc->valuestring[0] != '\0') {
    cfg->description = strdup(desc->valuestring);
    if (cfg->description == NULL) return -1;
  }
  if (parse_subjects(obj, cfg) != 0) return -1;

  int retention = 0, discard = 0, storage = 0;
  bool ok = get_enum(obj, "retention", retention_names, 3, &retention) &&
            get_enum(obj, "discard", discard_names, 2, &discard) &&
            get_enum(obj, "storage", storage_names, 2, &storage) &&
            get_int(obj, "max_consumers", &cfg->max_consumers) &&
            get_int(obj, "max_msgs", &cfg->max_msgs) && get_int(obj, "max_bytes", &cfg->max_bytes) &&
            get_int(obj, "max_age", &cfg->max_age_ns) &&
            get_int(obj, "max_msgs_per_subject", &cfg->max_msgs_per_subject) &&
            get_int(obj, "max_msg_size", &cfg->max_msg_size) &&
            get_int(obj, "num_replicas", &cfg->num_replicas) &&
            get_int(obj, "duplicate_window", &cfg->duplicate_window_ns) &&
            get_bool(obj, "allow_direct", &cfg->allow_direct) &&
            get_bool(obj, "mirror_direct", &cfg->mirror_direct) &&
            get_bool(obj, "sealed", &cfg->sealed) && get_bool(obj, "deny_delete", &cfg->deny_delete) &&
            get_bool(obj, "deny_purge", &cfg->deny_purge) &&
            get_bool(obj, "allow_rollup_hdrs", &cfg->allow_rollup_hdrs) &&
            get_bool(obj, "no_ack", &cfg->no_ack);
  if (ok && decode_republish(obj, cfg) != 0) ok = false;
  cfg->retention = (enum js_retention)retention;
  cfg->discard = discard == 1 ? STORE_DISCARD_NEW : STORE_DISCARD_OLD;
  cfg->storage = storage == 1 ? STORE_MEMORY : STORE_FILE;
  return ok ? 0 : -1;
}

/* Applies nats-server's defaults and checks, in its order and words. */
static int check_config(struct js_stream_config *cfg, struct js_err *err) {
  if (cfg->num_replicas == 0) cfg->num_replicas = 1;
  if (cfg->num_replicas > 1) {
    js_err_set(err, 500, 10074, "replicas > 1 not supported in non-clustered mode");
    return -1;
  }
  if (cfg->num_replicas < 0 || cfg->num_replicas > 5) {
    js_err_set(err, 500, 10052, "maximum replicas is 5");
    return -1;
  }
  if (cfg->max_msgs == 0) cfg->max_msgs = -1;
  if (cfg->max_msgs_per_subject == 0) cfg->max_msgs_per_subject = -1;
  if (cfg->max_bytes == 0) cfg->max_bytes = -1;
  if (cfg->max_msg_size == 0) cfg->max_msg_size = -1;
  if (cfg->max_consumers == 0) cfg->max_consumers = -1;
  if (cfg->duplicate_window_ns == 0) {
    cfg->duplicate_window_ns = JS_DEFAULT_DUPLICATE_WINDOW_NS;
    if (cfg->max_age_ns != 0 && cfg->max_age_ns < JS_DEFAULT_DUPLICATE_WINDOW_NS)
      cfg->duplicate_window_ns = cfg->max_age_ns;
  }
  if (cfg->duplicate_window_ns < 0) {
    js_err_set(err, 500, 10052, "duplicates window can not be negative");
    return -1;
  }
  if (cfg->max_age_ns != 0 && cfg->duplicate_window_ns > cfg->max_age_ns) {
    js_err_set(err, 500, 10052, "duplicates window can not be larger then max age");
    return -1;
  }
  if (cfg->max_msg_size > INT32_MAX) {
    js_err_set(err, 500, 10052, "max message size must be less than 2147483647");
    return -1;
  }
  if (cfg->subject_count == 0) {
    cfg->subjects = calloc(1, sizeof *cfg->subjects);
    if (cfg->subjects == NULL || (cfg->subjects[0] = strdup(cfg->name)) == NULL) {
      js_err_set(err, 500, 10052, "out of memory");
      return -1;
    }
    cfg->subject_count = 1;
  }
  for (uint32_t i = 0; i < cfg->subject_count; i++) {
    const char *s = cfg->subjects[i];
    if (!subject_valid(s, strlen(s))) {
      js_err_set(err, 500, 10052, "invalid subject");
      return -1;
    }
    if (js_subjects_overlap(s, "$JS.API.>")) {
      js_err_set(err, 500, 10052, "subjects overlap with jetstream api");
      return -1;
    }
    for (uint32_t j = 0; j < i; j++) {
      if (strcmp(cfg->subjects[j], s) == 0) {
        js_err_set(err, 500, 10052, "duplicate subjects detected");
        return -1;
      }
    }
  }
  /* Overlapping subjects would capture one message twice. */
  for (uint32_t i = 0; i < cfg->subject_count; i++) {
    for (uint32_t j = i + 1; j < cfg->subject_count; j++) {
      if (js_subjects_overlap(cfg->subjects[i], cfg->subjects[j])) {
        js_err_set(err, 500, 10052, "subject \"%s\" overlaps with \"%s\"", cfg->subjects[i],
                   cfg->subjects[j]);
        return -1;
      }
    }
  }
  return 0;
}

static bool has_mirror_or_sources(const cJSON *obj) {
  const cJSON *mirror = cJSON_GetObjectItemCaseSensitive(obj, "mirror");
  const cJSON *sources = cJSON_GetObjectItemCaseSensitive(obj, "sources");
  return (mirror != NULL && !cJSON_IsNull(mirror)) || cJSON_GetArraySize(sources) > 0;
}

/* Counts the '*' tokens of a subject and whether it ends in '>'. */
static uint32_t count_wildcards(const char *subject, bool *full) {
  uint32_t stars = 0;
  *full = false;
  for (const char *t = subject;; t++) {
    size_t len = strcspn(t, ".");
    if (len == 1 && t[0] == '*') stars++;
    if (len == 1 && t[0] == '>') *full = true;
    t += len;
    if (*t == '\0') break;
  }
  return stars;
}

/* Returns N for a "$N" destination token, or 0 for any other token. */
static uint32_t reference_of(const char *token, size_t len) {
  if (len < 2 || token[0] != '$') return 0;
  uint32_t n = 0;
  for (size_t i = 1; i < len; i++) {
    if (token[i] < '0' || token[i] > '9' || n > 1000) return 0;
    n = n * 10 + (uint32_t)(token[i] - '0');
  }
  return n;
}

/* Checks that dest can be built from a subject matching src: each "$N"
 * names one of src's '*' wildcards, and without references dest has the
 * same '*' count and '>' as src. */
static bool republish_mapping_valid(const char *src, const char *dest) {
  bool src_full, dest_full;
  uint32_t src_stars = count_wildcards(src, &src_full);
  uint32_t dest_stars = count_wildcards(dest, &dest_full);
  bool references = false;
  for (const char *t = dest;; t++) {
    size_t len = strcspn(t, ".");
    uint32_t n = reference_of(t, len);
    if (n > 0) {
      references = true;
      if (n > src_stars) return false;
    }
    t += len;
    if (*t == '\0') break;
  }
  if (dest_full && !src_full) return false;
  return references ? dest_stars == 0 : dest_stars == src_stars && dest_full == src_full;
}

/* Applies nats-server 2.9's checks of the republish settings. */
static int check_republish(const struct js_stream_config *cfg, struct js_err *err) {
  if (cfg->republish_src == NULL) return 0;
  const char *src = cfg->republish_src, *dest = cfg->republish_dest;
  if (!subject_valid(src, strlen(src)) || !subject_valid(dest, strlen(dest)) ||
      !republish_mapping_valid(src, dest)) {
    js_err_set(err, 500, 10052, "stream configuration for republish not valid");
    return -1;
  }
  bool in_stream = false;
  for (uint32_t i = 0; i < cfg->subject_count; i++) {
    if (js_subjects_overlap(cfg->subjects[i], dest)) {
      js_err_set(err, 500, 10052, "stream configuration for republish destination forms a cycle");
      return -1;
    }
    if (js_subjects_overlap(cfg->subjects[i], src)) in_stream = true;
  }
  if (!in_stream) {
    js_err_set(err, 500, 10052, "stream configuration for republish source is not valid subset of subjects");
    return -1;
  }
  return 0;
}

int js_republish_subject(const char *src, const char *dest, const char *subject, char *out,
                         size_t cap) {
  /* Capture the subject tokens that src's wildcards match. Subjects have
   * far fewer than 64 tokens, so later '*' tokens are left unmapped. */
  const char *captures[64];
  size_t capture_lens[64];
  uint32_t count = 0;
  const char *rest = NULL;
  const char *s = subject, *p = src;
  for (;;) {
    size_t plen = strcspn(p, "."), slen = strcspn(s, ".");
    if (plen == 1 && p[0] == '>') {
      rest = s;
      break;
    }
    if (plen == 1 && p[0] == '*' && count < 64) {
      captures[count] = s;
      capture_lens[count++] = slen;
    }
    if (p[plen] == '\0' || s[slen] == '\0') break;
    p += plen + 1;
    s += slen + 1;
  }
  /* Build dest, replacing '*' in order, "$N" by number and '>' by the rest. */
  size_t used = 0;
  uint32_t next_star = 0;
  for (const char *t = dest;; t++) {
    size_t len = strcspn(t, ".");
    const char *piece = t;
    size_t piece_len = len;
    uint32_t n = reference_of(t, len);
    if (n > 0 && n <= count) {
      piece = captures[n - 1];
      piece_len = capture_lens[n - 1];
    } else if (len == 1 && t[0] == '*' && next_star < count) {
      piece = captures[next_star];
      piece_len = capture_lens[next_star++];
    } else if (len == 1 && t[0] == '>' && rest != NULL) {
      piece = rest;
      piece_len = strlen(rest);
    }
    if (used + piece_len + 2 > cap) return -ENAMETOOLONG;
    if (used > 0) out[used++] = '.';
    memcpy(out + used, piece, piece_len);
    used += piece_len;
    t += len;
    if (*t == '\0') break;
  }
  out[used] = '\0';
  return 0;
}

int js_config_parse(const struct cJSON *obj, struct js_stream_config *cfg, struct js_err *err) {
  memset(cfg, 0, sizeof *cfg);
  int rc = 0;
  if (!cJSON_IsObject(obj) || decode_config(obj, cfg) != 0) {
    js_err_set(err, 400, 10025, "invalid JSON");
    rc = -1;
  } else if (has_mirror_or_sources(obj)) {
    /* Better an error than a stream that silently copies nothing. */
    js_err_set(err, 500, 10052, "stream mirrors and sources are not supported by this server yet");
    rc = -1;
  } else if (strchr(cfg->name, '/') != NULL || strchr(cfg->name, '\\') != NULL) {
    js_err_set(err, 400, 10128, "stream name can not contain path separators");
    rc = -1;
  } else {
    rc = check_config(cfg, err);
    if (rc == 0) rc = check_republish(cfg, err);
  }
  if (rc != 0) js_config_free(cfg);
  return rc;
}

/* cJSON prints a number outside int's range with 15 significant digits
 * when that reads back as nearly the same double, which changes large
 * values such as durations in nanoseconds. Such values are added as raw
 * integer text, which get_int() also reads. */
static void add_int(cJSON *obj, const char *key, int64_t v) {
  if (v >= INT32_MIN && v <= INT32_MAX) {
    cJSON_AddNumberToObject(obj, key, (double)v);
    return;
  }
  char text[24];
  snprintf(text, sizeof text, "%" PRId64, v);
  cJSON_AddRawToObject(obj, key, text);
}

struct cJSON *js_config_json(const struct js_stream_config *cfg) {
  cJSON *o = cJSON_CreateObject();
  if (o == NULL) return NULL;
  cJSON_AddStringToObject(o, "name", cfg->name);
  if (cfg->description != NULL) cJSON_AddStringToObject(o, "description", cfg->description);
  cJSON *subjects = cJSON_AddArrayToObject(o, "subjects");
  for (uint32_t i = 0; subjects != NULL && i < cfg->subject_count; i++)
    cJSON_AddItemToArray(subjects, cJSON_CreateString(cfg->subjects[i]));
  cJSON_AddStringToObject(o, "retention", retention_names[cfg->retention]);
  add_int(o, "max_consumers", cfg->max_consumers);
  add_int(o, "max_msgs", cfg->max_msgs);
  add_int(o, "max_bytes", cfg->max_bytes);
  add_int(o, "max_age", cfg->max_age_ns);
  add_int(o, "max_msgs_per_subject", cfg->max_msgs_per_subject);
  add_int(o, "max_msg_size", cfg->max_msg_size);
  cJSON_AddStringToObject(o, "discard", discard_names[cfg->discard == STORE_DISCARD_NEW]);
  cJSON_AddStringToObject(o, "storage", storage_names[cfg->storage == STORE_MEMORY]);
  add_int(o, "num_replicas", cfg->num_replicas);
  if (cfg->no_ack) cJSON_AddBoolToObject(o, "no_ack", true);
  add_int(o, "duplicate_window", cfg->duplicate_window_ns);
  if (cfg->republish_src != NULL) {
    cJSON *republish = cJSON_AddObjectToObject(o, "republish");
    if (republish != NULL) {
      cJSON_AddStringToObject(republish, "src", cfg->republish_src);
      cJSON_AddStringToObject(republish, "dest", cfg->republish_dest);
      if (cfg->republish_headers_only) cJSON_AddBoolToObject(republish, "headers_only", true);
    }
  }
  cJSON_AddBoolToObject(o, "allow_direct", cfg->allow_direct);
  cJSON_AddBoolToObject(o, "mirror_direct", cfg->mirror_direct);
  cJSON_AddBoolToObject(o, "sealed", cfg->sealed);
  cJSON_AddBoolToObject(o, "deny_delete", cfg->deny_delete);
  cJSON_AddBoolToObject(o, "deny_purge", cfg->deny_purge);
  cJSON_AddBoolToObject(o, "allow_rollup_hdrs", cfg->allow_rollup_hdrs);
  return o;
}

void js_config_free(struct js_stream_config *cfg) {
  for (uint32_t i = 0; i < cfg->subject_count; i++) free(cfg->subjects[i]);
  free(cfg->subjects);
  free(cfg->description);
  free(cfg->republish_src);
  free(cfg->republish_dest);
  cfg->republish_src = NULL;
  cfg->republish_dest = NULL;
  cfg->subjects = NULL;
  cfg->subject_count = 0;
  cfg->description = NULL;
}

int js_config_copy(struct js_stream_config *dst, const struct js_stream_config *src) {
  *dst = *src;
  dst->subjects = NULL;
  dst->subject_count = 0;
  dst->description = NULL;
  dst->republish_src = NULL;
  dst->republish_dest = NULL;
  if (src->description != NULL && (dst->description = strdup(src->description)) == NULL)
    return -1;
  if (src->republish_src != NULL && ((dst->republish_src = strdup(src->republish_src)) == NULL ||
                                     (dst->republish_dest = strdup(src->republish_dest)) == NULL))
    return -1;
  dst->subjects = calloc(src->subject_count > 0 ? src->subject_count : 1, sizeof *dst->subjects);
  if (dst->subjects == NULL) return -1;
  for (uint32_t i = 0; i < src->subject_count; i++) {
    if ((dst->subjects[i] = strdup(src->subjects[i])) == NULL) return -1;
    dst->subject_count++;
  }
  return 0;
}

/* Go's time.RFC3339Nano in UTC: trailing zeros of the fraction dropped,
 * and the zero time.Time for 0. */
void js_time_format(int64_t ns, char *out, size_t cap) {
  if (ns == 0) {
    snprintf(out, cap, "0001-01-01T00:00:00Z");
    return;
  }
  time_t secs = (time_t)(ns / 1000000000LL);
  long frac = (long)(ns % 1000000000LL);
  struct tm tm;
  gmtime_r(&secs, &tm);
  size_t n = strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm);
  if (frac > 0) {
    char digits[16];
    snprintf(digits, sizeof digits, ".%09ld", frac);
    size_t len = strlen(digits);
    while (len > 1 && digits[len - 1] == '0') digits[--len] = '\0';
    n += (size_t)snprintf(out + n, cap - n, "%s", digits);
  }
  snprintf(out + n, cap - n, "Z");
}

/* Parses RFC 3339 with an optional fraction and a Z or +hh:mm offset.
 * Returns nanoseconds since the epoch, or -1 when invalid. */
int64_t js_time_parse(const char *text) {
  struct tm tm = {0};
  const char *p = strptime(text, "%Y-%m-%dT%H:%M:%S", &tm);
  if (p == NULL) return -1;
  int64_t frac = 0;
  if (*p == '.') {
    int64_t scale = 100000000;
    for (p++; *p >= '0' && *p <= '9'; p++) {
      frac += (*p - '0') * scale;
      scale /= 10;
    }
  }
  int64_t offset_s = 0;
  if (*p == '+' || *p == '-') {
    int hh = 0, mm = 0;
    if (sscanf(p + 1, "%2d:%2d", &hh, &mm) != 2) return -1;
    offset_s = (int64_t)(hh * 3600 + mm * 60) * (*p == '-' ? -1 : 1);
  } else if (*p != 'Z') {
    return -1;
  }
  int64_t secs = (int64_t)timegm(&tm) - offset_s;
  /* Years past 2262 do not fit in nanoseconds since 1970. */
  if (secs > INT64_MAX / 1000000000LL - 1 || secs < INT64_MIN / 1000000000LL + 1) return -1;
  return secs * 1000000000LL + frac;
}

size_t js_base64_encode(const uint8_t *in, size_t len, char *out) {
  static const char table[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t o = 0;
  size_t i = 0;
  for (; i + 2 < len; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    out[o++] = table[v >> 18];
    out[o++] = table[(v >> 12) & 63];
    out[o++] = table[(v >> 6) & 63];
    out[o++] = table[v & 63];
  }
  if (i < len) {
    uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0);
    out[o++] = table[v >> 18];
    out[o++] = table[(v >> 12) & 63];
    out[o++] = i + 1 < len ? table[(v >> 6) & 63] : '=';
    out[o++] = '=';
  }
  out[o] = '\0';
  return o;
}
