/*
 * format.c - the `format` keyword: date-time, date, email, uuid, ipv4, uri.
 *
 * In sluice contracts `format` is an assertion (a record whose string does not conform is
 * invalid), not the annotation that draft 2020-12 makes it by default: a contract that
 * says "date-time" means it. The checks are exact for the grammars they name and
 * deliberately simple where the standard is not (email):
 *
 *   date-time  RFC 3339 date-time: YYYY-MM-DD "T" hh:mm:ss[.fraction] ("Z" | +hh:mm |
 *              -hh:mm), T and Z in either case; the day must exist in its month (leap
 *              years included); seconds 00-60 (60 for a leap second)
 *   date       RFC 3339 full-date: YYYY-MM-DD, a day that exists
 *   email      local@domain: exactly one "@"; local part 1-64 bytes of printable
 *              characters other than space, not starting or ending with "." and without
 *              ".."; domain of at least two dot-separated labels, each 1-63 letters,
 *              digits or hyphens (or non-ASCII), not starting or ending with "-".
 *              user@localhost is rejected (the domain must contain a dot).
 *   uuid       8-4-4-4-12 hexadecimal digits (either case), any version
 *   ipv4       four decimal numbers 0-255 separated by dots, no leading zeros
 *   uri        an absolute URI: scheme (a letter, then letters, digits, + - .) ":" and a
 *              rest made of RFC 3986 characters (unreserved, reserved, and %HH escapes);
 *              no spaces or non-ASCII characters
 *
 * Threading: pure functions.
 */
#include <string.h>

#include "contract/contract_internal.h"

static int digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

static int num(const char *s, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

static int full_date(const char *s, size_t n)
{
    if (n != 10 || !digits(s, 4) || s[4] != '-' || !digits(s + 5, 2) || s[7] != '-' ||
        !digits(s + 8, 2))
        return 0;
    int y = num(s, 4), m = num(s + 5, 2), d = num(s + 8, 2);
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m < 1 || m > 12 || d < 1)
        return 0;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    int max = mdays[m - 1] + (m == 2 && leap);
    return d <= max;
}

static int date_time(const char *s, size_t n)
{
    if (n < 20 || !full_date(s, 10) || (s[10] != 'T' && s[10] != 't'))
        return 0;
    const char *t = s + 11;
    size_t r = n - 11;
    if (r < 9 || !digits(t, 2) || t[2] != ':' || !digits(t + 3, 2) || t[5] != ':' ||
        !digits(t + 6, 2))
        return 0;
    if (num(t, 2) > 23 || num(t + 3, 2) > 59 || num(t + 6, 2) > 60)
        return 0;
    size_t i = 8;
    if (t[i] == '.') {
        size_t st = ++i;
        while (i < r && t[i] >= '0' && t[i] <= '9')
            i++;
        if (i == st)
            return 0;
    }
    if (i >= r)
        return 0;
    if ((t[i] == 'Z' || t[i] == 'z') && i + 1 == r)
        return 1;
    if ((t[i] == '+' || t[i] == '-') && r - i == 6 && digits(t + i + 1, 2) && t[i + 3] == ':' &&
        digits(t + i + 4, 2))
        return num(t + i + 1, 2) <= 23 && num(t + i + 4, 2) <= 59;
    return 0;
}

static int email(const char *s, size_t n)
{
    const char *at = memchr(s, '@', n);
    if (!at || memchr(at + 1, '@', n - (size_t)(at - s) - 1))
        return 0;
    size_t ln = (size_t)(at - s), dn = n - ln - 1;
    const char *d = at + 1;
    if (ln == 0 || ln > 64 || s[0] == '.' || s[ln - 1] == '.')
        return 0;
    for (size_t i = 0; i < ln; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c == 0x7F || (c == '.' && i + 1 < ln && s[i + 1] == '.'))
            return 0;
    }
    if (dn == 0 || dn > 253)
        return 0;
    size_t labels = 0, len = 0;
    for (size_t i = 0; i <= dn; i++) {
        if (i == dn || d[i] == '.') {
            if (len == 0 || len > 63 || d[i - len] == '-' || d[i - 1] == '-')
                return 0;
            labels++;
            len = 0;
            continue;
        }
        unsigned char c = (unsigned char)d[i];
        if (!(c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '-'))
            return 0;
        len++;
    }
    return labels >= 2;
}

static int hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int uuid(const char *s, size_t n)
{
    if (n != 36)
        return 0;
    for (size_t i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return 0;
        } else if (!hex(s[i])) {
            return 0;
        }
    }
    return 1;
}

static int ipv4(const char *s, size_t n)
{
    size_t i = 0;
    for (int part = 0; part < 4; part++) {
        if (part) {
            if (i >= n || s[i] != '.')
                return 0;
            i++;
        }
        size_t st = i;
        while (i < n && s[i] >= '0' && s[i] <= '9' && i - st < 4)
            i++;
        size_t len = i - st;
        if (len == 0 || len > 3 || (len > 1 && s[st] == '0') || num(s + st, len) > 255)
            return 0;
    }
    return i == n;
}

static int uri(const char *s, size_t n)
{
    size_t i = 0;
    if (n == 0 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
        return 0;
    while (i < n && ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
                     (s[i] >= '0' && s[i] <= '9') || s[i] == '+' || s[i] == '-' || s[i] == '.'))
        i++;
    if (i >= n || s[i] != ':')
        return 0;
    for (i++; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%') {
            if (i + 2 >= n || !hex(s[i + 1]) || !hex(s[i + 2]))
                return 0;
            i += 2;
            continue;
        }
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
            continue;
        if (!strchr("-._~:/?#[]@!$&'()*+,;=", c) || c == 0)
            return 0;
    }
    return 1;
}

int sl__contract_format_ok(int f, const char *s, size_t n)
{
    switch (f) {
    case F_DATE_TIME:
        return date_time(s, n);
    case F_DATE:
        return full_date(s, n);
    case F_EMAIL:
        return email(s, n);
    case F_UUID:
        return uuid(s, n);
    case F_IPV4:
        return ipv4(s, n);
    case F_URI:
        return uri(s, n);
    default:
        return 1;
    }
}

const char *sl__contract_format_name(int f)
{
    static const char *const names[] = {"", "date-time", "date", "email", "uuid", "ipv4", "uri"};
    return f >= 0 && f <= F_URI ? names[f] : "";
}
