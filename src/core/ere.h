/*
 * ere.h - a guard in front of regcomp for POSIX extended regular expressions.
 *
 * glibc compiles a repetition by copying the repeated subexpression: "(a{100}){100}" is
 * 10,000 nodes, "(x+)+++..." doubles with every quantifier, and a pattern of 60 bytes can
 * make regcomp allocate gigabytes (found by fuzzing the expression language). Patterns
 * come from configuration files, so they are checked before regcomp: a quantifier may not
 * follow another quantifier (undefined in POSIX ERE anyway), and the number of nodes the
 * repetitions would expand to must stay within SL__ERE_MAX_NODES.
 */
#ifndef SLUICE_CORE_ERE_H
#define SLUICE_CORE_ERE_H

#include <stddef.h>

#define SL__ERE_MAX_NODES 100000

/*
 * 0 when pat[0..len) may be given to regcomp; -1 with a reason in why (a sentence
 * fragment such as "a quantifier cannot follow another quantifier") otherwise. Syntax
 * errors regcomp reports itself are not looked for.
 */
int sl__ere_check(const char *pat, size_t len, char *why, size_t whylen);

#endif
