/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of core/subject.c. The expected verdicts follow nats-server
 * 2.9.10's IsValidSubject and IsValidLiteralSubject, including the cases
 * where its rules are looser than one might guess (wildcard characters
 * inside a longer token, vertical tab, whitespace in a literal subject). */

#include <criterion/criterion.h>
#include <string.h>

#include "core/subject.h"

struct verdict_case {
  const char *text;
  bool expected;
};

static void check_verdicts(bool (*fn)(const char *, size_t), const char *fn_name,
                           const struct verdict_case *cases, size_t count)
{
  for (size_t i = 0; i < count; i++) {
    const char *t = cases[i].text;
    cr_expect_eq(fn(t, strlen(t)), cases[i].expected, "%s(\"%s\") should be %s",
                 fn_name, t, cases[i].expected ? "true" : "false");
  }
}

#define CHECK_VERDICTS(fn, cases)                                              \
  check_verdicts(fn, #fn, cases, sizeof(cases) / sizeof(cases[0]))

Test(subject, valid_subscription_subjects)
{
  static const struct verdict_case cases[] = {
      {"foo", true},
      {"foo.bar", true},
      {"foo.bar.baz", true},
      {"*", true},
      {">", true},
      {"foo.*", true},
      {"*.bar", true},
      {"foo.*.baz", true},
      {"*.*.*", true},
      {"foo.>", true},
      {"*.>", true},
      {"$JS.API.>", true},
      {"_INBOX.abc123.*", true},
      {"foo*", true},   /* '*' inside a longer token is a plain byte */
      {"*foo.bar", true},
      {"foo>", true},
      {">foo.bar", true},
      {"foo.>bar", true},
      {"foo\vbar", true}, /* vertical tab is not in nats-server's set */
      {"caf\xc3\xa9.bar", true},
  };
  CHECK_VERDICTS(subject_valid, cases);
}

Test(subject, invalid_subscription_subjects)
{
  static const struct verdict_case cases[] = {
      {"", false},
      {".", false},
      {"..", false},
      {".foo", false},
      {"foo.", false},
      {"foo..bar", false},
      {">.foo", false},
      {"foo.>.bar", false},
      {"foo.>.>", false},
      {"foo.>.", false},
      {"foo bar", false},
      {" ", false},
      {"foo.\t", false},
      {"foo\tbar", false},
      {"foo\nbar", false},
      {"foo\rbar", false},
      {"foo\fbar", false},
      {"foo. .bar", false},
      {"foo.bar ", false},
  };
  CHECK_VERDICTS(subject_valid, cases);
}

Test(subject, length_bounds_not_nul)
{
  /* Only len bytes count: a valid prefix of an invalid string is valid. */
  cr_expect(subject_valid("foo.bar..", 7));
  cr_expect_not(subject_valid("foo.bar", 0));
  cr_expect(subject_valid_literal("foo.*", 3));
  cr_expect_not(subject_valid_literal("foo.*", 5));
  cr_expect(subject_queue_valid("q1 extra", 2));
}

Test(subject, literal_subjects)
{
  static const struct verdict_case cases[] = {
      {"foo", true},
      {"foo.bar", true},
      {"foo*", true},
      {"*foo", true},
      {"foo>.bar", true},
      {"$JS.API.INFO", true},
      /* nats-server 2.9.10 leaves whitespace in a publish subject to the
       * parser, which has already split on space, tab, CR and LF. */
      {"foo\fbar", true},
      {"", false},
      {"*", false},
      {">", false},
      {"foo.*", false},
      {"foo.>", false},
      {"*.foo", false},
      {"foo.*.bar", false},
      {".foo", false},
      {"foo.", false},
      {"foo..bar", false},
  };
  CHECK_VERDICTS(subject_valid_literal, cases);
}

Test(subject, queue_names)
{
  static const struct verdict_case cases[] = {
      {"q", true},
      {"workers", true},
      {"group.a", true},
      {"*", true},
      {"_sys_", true}, /* reserved, but the caller reports that */
      {"", false},
      {"a b", false},
      {"a\tb", false},
      {"a\nb", false},
      {"a\rb", false},
      {"a\fb", false},
  };
  CHECK_VERDICTS(subject_queue_valid, cases);
}

struct match_case {
  const char *pattern;
  const char *subject;
  bool expected;
};

Test(subject, matches_pattern_table)
{
  static const struct match_case cases[] = {
      {"foo", "foo", true},
      {"foo", "bar", false},
      {"foo", "foo.bar", false},
      {"foo.bar", "foo", false},
      {"foo.bar", "foo.ba", false},
      {"foo.ba", "foo.bar", false},
      {"foo.bar", "foo.bar", true},
      {"*", "foo", true},
      {"*", "foo.bar", false},
      {"foo.*", "foo.bar", true},
      {"foo.*", "foo", false},
      {"foo.*", "foo.bar.baz", false},
      {"*.bar", "foo.bar", true},
      {"*.bar", "foo.baz", false},
      {"*.*", "a.b", true},
      {"*.*", "a.b.c", false},
      {"foo.*.baz", "foo.bar.baz", true},
      {"foo.*.baz", "foo.bar.qux", false},
      {">", "foo", true},
      {">", "foo.bar.baz", true},
      {"foo.>", "foo", false},
      {"foo.>", "foo.bar", true},
      {"foo.>", "foo.bar.baz", true},
      {"foo.>", "bar.baz", false},
      {"*.>", "a", false},
      {"*.>", "a.b", true},
      {"*.*.>", "a.b.c.d", true},
      /* Wildcard bytes inside longer tokens are literal. */
      {"foo*", "foo*", true},
      {"foo*", "fooo", false},
      /* A subject token that is itself '*' is matched as a plain token. */
      {"foo.*", "foo.*", true},
      {"foo.bar", "foo.*", false},
      {"*", "*", true},
      /* Subjects with empty tokens match nothing. */
      {"foo", "foo.", false},
      {"foo.>", "foo.bar.", false},
      {"foo.>", "foo..bar", false},
      {">", "", false},
      {">", ".", false},
      {"*", "", false},
      {"", "", false},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    const struct match_case *c = &cases[i];
    cr_expect_eq(subject_matches(c->pattern, strlen(c->pattern), c->subject,
                                 strlen(c->subject)),
                 c->expected, "pattern \"%s\" subject \"%s\" should be %s",
                 c->pattern, c->subject, c->expected ? "a match" : "no match");
  }
}

/* Splits s into tokens for the reference matcher below. */
static size_t split_tokens(const char *s, const char *tokens[], size_t lens[],
                           size_t max)
{
  size_t n = 0;
  const char *start = s;
  for (const char *p = s;; p++) {
    if (*p == '.' || *p == '\0') {
      cr_assert_lt(n, max);
      tokens[n] = start;
      lens[n] = (size_t)(p - start);
      n++;
      if (*p == '\0')
        break;
      start = p + 1;
    }
  }
  return n;
}

/* The definition of a match written a second way, token by token. */
static bool reference_match(const char *pattern, const char *subject)
{
  const char *pt[8], *st[8];
  size_t pl[8], sl[8];
  size_t pn = split_tokens(pattern, pt, pl, 8);
  size_t sn = split_tokens(subject, st, sl, 8);
  for (size_t i = 0; i < pn; i++) {
    bool gt = pl[i] == 1 && pt[i][0] == '>';
    if (gt)
      return i < sn;
    if (i >= sn)
      return false;
    bool star = pl[i] == 1 && pt[i][0] == '*';
    if (!star && (pl[i] != sl[i] || memcmp(pt[i], st[i], sl[i]) != 0))
      return false;
  }
  return pn == sn;
}

/* Writes the tokens picked by the digits of code (base alphabet_len) joined
 * with dots. */
static void build_subject(char *out, unsigned code, unsigned token_count,
                          const char *const *alphabet, unsigned alphabet_len)
{
  out[0] = '\0';
  for (unsigned t = 0; t < token_count; t++) {
    if (t > 0)
      strcat(out, ".");
    strcat(out, alphabet[code % alphabet_len]);
    code /= alphabet_len;
  }
}

Test(subject, matches_agree_with_reference)
{
  static const char *const pattern_tokens[] = {"a", "bb", "*", ">"};
  static const char *const subject_tokens[] = {"a", "bb", "c"};
  unsigned compared = 0;
  for (unsigned pn = 1; pn <= 4; pn++) {
    unsigned pcodes = 1;
    for (unsigned i = 0; i < pn; i++)
      pcodes *= 4;
    for (unsigned pc = 0; pc < pcodes; pc++) {
      char pattern[64];
      build_subject(pattern, pc, pn, pattern_tokens, 4);
      if (!subject_valid(pattern, strlen(pattern)))
        continue;
      for (unsigned sn = 1; sn <= 4; sn++) {
        unsigned scodes = 1;
        for (unsigned i = 0; i < sn; i++)
          scodes *= 3;
        for (unsigned sc = 0; sc < scodes; sc++) {
          char subject[64];
          build_subject(subject, sc, sn, subject_tokens, 3);
          bool got = subject_matches(pattern, strlen(pattern), subject, strlen(subject));
          cr_assert_eq(got, reference_match(pattern, subject),
                       "pattern \"%s\" subject \"%s\"", pattern, subject);
          compared++;
        }
      }
    }
  }
  cr_expect_gt(compared, 10000);
}
