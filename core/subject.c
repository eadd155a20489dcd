/* SPDX-License-Identifier: Apache-2.0 */
/* Subject and queue-name validation, and matching of one literal subject
 * against one pattern. The rules are those of nats-server 2.9.10
 * (server/sublist.go: IsValidSubject, IsValidLiteralSubject, Match). */

#include "core/subject.h"

#include <stdint.h>
#include <string.h>

/* The whitespace set nats-server 2.9.10 rejects in subjects. Vertical tab is
 * not in it. */
static bool is_subject_space(unsigned char c)
{
  return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r';
}

bool subject_valid(const char *s, size_t len)
{
  if (len == 0)
    return false;

  size_t token_start = 0;
  bool after_full_wildcard = false;
  for (size_t i = 0; i <= len; i++) {
    if (i < len && s[i] != '.') {
      if (is_subject_space((unsigned char)s[i]))
        return false;
      continue;
    }

    /* s[token_start, i) is one token. */
    size_t token_len = i - token_start;
    if (token_len == 0 || after_full_wildcard)
      return false;
    if (token_len == 1 && s[token_start] == '>')
      after_full_wildcard = true;
    token_start = i + 1;
  }
  return true;
}

/* nats-server 2.9.10 checks a pedantic publish subject only for empty tokens
 * and wildcard tokens. Whitespace cannot reach it because the protocol parser
 * splits arguments on space, tab, CR and LF. */
bool subject_valid_literal(const char *s, size_t len)
{
  if (len == 0)
    return false;

  size_t token_start = 0;
  for (size_t i = 0; i <= len; i++) {
    if (i < len && s[i] != '.')
      continue;

    size_t token_len = i - token_start;
    if (token_len == 0)
      return false;
    if (token_len == 1 && (s[token_start] == '*' || s[token_start] == '>'))
      return false;
    token_start = i + 1;
  }
  return true;
}

/* nats-server 2.9.10 has no check of its own for queue names: the parser
 * splits SUB arguments on whitespace, so a name is any non-empty run of other
 * bytes. The name "_sys_" is reserved, but nats-server reports it as a
 * permissions violation, so the caller checks it, not this function. */
bool subject_queue_valid(const char *s, size_t len)
{
  if (len == 0)
    return false;
  for (size_t i = 0; i < len; i++) {
    if (is_subject_space((unsigned char)s[i]))
      return false;
  }
  return true;
}

/* Finds the end of the token starting at s[start]: the index of the next '.'
 * or len. */
static size_t token_end(const char *s, size_t len, size_t start)
{
  const char *dot = memchr(s + start, '.', len - start);
  return dot ? (size_t)(dot - s) : len;
}

/* '*' in the pattern matches exactly one token and '>' one or more. A subject
 * token that is itself '*' or '>' is compared as a plain token, as the
 * sublist does. A subject with an empty token matches nothing, like
 * nats-server's Match. */
bool subject_matches(const char *pattern, size_t pattern_len,
                     const char *subject, size_t subject_len)
{
  if (pattern_len == 0 || subject_len == 0)
    return false;

  size_t p = 0;
  size_t s = 0;
  for (;;) {
    size_t p_end = token_end(pattern, pattern_len, p);
    size_t s_end = token_end(subject, subject_len, s);
    size_t p_token_len = p_end - p;
    size_t s_token_len = s_end - s;
    if (s_token_len == 0 || p_token_len == 0)
      return false;

    if (p_token_len == 1 && pattern[p] == '>') {
      /* Matches the rest, but only when every remaining token is non-empty. */
      if (subject[subject_len - 1] == '.')
        return false;
      for (size_t i = s; i + 1 < subject_len; i++) {
        if (subject[i] == '.' && subject[i + 1] == '.')
          return false;
      }
      return p_end == pattern_len;
    }
    bool any_token = p_token_len == 1 && pattern[p] == '*';
    if (!any_token && (p_token_len != s_token_len ||
                       memcmp(pattern + p, subject + s, s_token_len) != 0))
      return false;

    bool pattern_done = p_end == pattern_len;
    bool subject_done = s_end == subject_len;
    if (pattern_done || subject_done)
      return pattern_done && subject_done;
    p = p_end + 1;
    s = s_end + 1;
  }
}
