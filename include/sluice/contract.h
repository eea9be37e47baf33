/*
 * contract.h - data contracts: a stated subset of JSON Schema draft 2020-12, compiled once
 * and checked per record.
 *
 * A contract is a JSON document with `$id` (its name), `version` (a string or integer)
 * and the schema keywords docs/contracts.md lists: type (a name or an array of names,
 * e.g. ["string", "null"]), properties, required, additionalProperties (boolean or a
 * schema), enum, const, minimum, maximum, exclusiveMinimum, exclusiveMaximum, minLength,
 * maxLength, pattern, format (date-time, date, email, uuid, ipv4, uri), items,
 * minItems, maxItems, $ref to "#/$defs/NAME" (and $defs), plus the annotations $schema,
 * title, description, $comment, default, examples. `true` and `false` are accepted as
 * schemas wherever a schema goes. Any other keyword is a load error: a contract never
 * silently means less than it says. `format` is an assertion; `pattern` is the part of
 * JSON Schema's regular expressions that POSIX ERE matches exactly (docs/contracts.md).
 *
 * Validation reports every violation, each with the JSON path of the value ("$.user.id",
 * "$.tags[2]"), the rule (the keyword), what was expected and what was found.
 *
 * Threading: a loaded contract is immutable; any number of threads may validate with it.
 */
#ifndef SLUICE_CONTRACT_H
#define SLUICE_CONTRACT_H

#include <stddef.h>
#include <stdint.h>

#include "sluice/arena.h"
#include "sluice/rc.h"
#include "sluice/record.h"

struct sl_contract;

/*
 * Load and compile the contract in file path. SL_ENOENT (missing file), SL_EPARSE (not
 * JSON), SL_ECONFIG (not a valid contract: unknown or unsupported keyword, wrong type of
 * a keyword's value, bad pattern, unresolvable $ref, missing $id or version), each with
 * err naming the file and the JSON path of the problem. SL_ENOMEM.
 */
sl_rc sl_contract_load(const char *path, struct sl_contract **out, struct sl_error *err);

/* As sl_contract_load from memory; name is used in messages. */
sl_rc sl_contract_load_mem(const char *text, size_t n, const char *name, struct sl_contract **out,
                           struct sl_error *err);

void sl_contract_destroy(struct sl_contract *c);

/* The contract's $id, its version as text, and "id@version". */
const char *sl_contract_name(const struct sl_contract *c);
const char *sl_contract_version(const struct sl_contract *c);
const char *sl_contract_label(const struct sl_contract *c);

/* The document's text as loaded (for storing beside a table). */
const char *sl_contract_text(const struct sl_contract *c, size_t *len);

/* One violation. Strings live in the arena given to sl_contract_validate. */
struct sl_violation {
    const char *path;     /* "$.amount" */
    const char *rule;     /* "type", "required", "minimum", ... */
    const char *expected; /* "number", "present", ">= 0" */
    const char *actual;   /* "string \"12a\"", "missing", "-5" */
};

/*
 * Check record r (parsed) against c. Returns the number of violations found (0: valid),
 * filling v[0..min(n, max)) with the first ones in document order; strings are
 * allocated in a (or belong to c, so they live as long as both). v may be NULL when max
 * is 0 (count only). Records with edits are checked as they are now (edits applied).
 * Returns (size_t)-1 when an allocation in a fails.
 */
size_t sl_contract_validate(const struct sl_contract *c, struct sl_record *r, struct sl_arena *a,
                            struct sl_violation *v, size_t max);

/* A top-level property, for sinks that make columns from a contract. */
struct sl_contract_field {
    const char *name;
    const char *type; /* "integer", "number", "string", "boolean", "object", "array", or
                         "any" when the property allows several non-null types */
    int required;     /* in `required` */
    int nullable;     /* type allows null */
};

/*
 * The root object's properties in document order (none when the root schema has no
 * properties). A field's types come from its type keyword, narrowed by a $ref target and
 * by enum/const values; integer with number is "number"; no constraint at all is "any"
 * and nullable. *out stays valid while c lives.
 */
size_t sl_contract_fields(const struct sl_contract *c, const struct sl_contract_field **out);

enum sl_compat_mode { SL_COMPAT_BACKWARD = 1, SL_COMPAT_FORWARD = 2, SL_COMPAT_FULL = 3 };

/*
 * One difference between two versions. breaks is the set of modes it is incompatible
 * with: SL_COMPAT_BACKWARD when some data valid under OLD is invalid under NEW (a new
 * required field, a narrowed type or range, a removed enum value), SL_COMPAT_FORWARD when
 * some data valid under NEW is invalid under OLD, both, or 0 for a compatible change that
 * is still worth listing.
 */
struct sl_contract_change {
    const char *path;   /* "$.amount" */
    const char *reason; /* "type narrowed from [number, null] to number" */
    int breaks;         /* bit set of SL_COMPAT_BACKWARD, SL_COMPAT_FORWARD */
};
typedef int (*sl_contract_change_fn)(void *ctx, const struct sl_contract_change *ch);

/*
 * Compare old and new, calling fn (may be NULL) for each change in path order (a node's
 * own keywords, then its properties, additional properties, required names, items).
 * *incompatible (may be NULL) is set to 1 when any change breaks mode, else 0. The
 * comparison is sound and conservative (docs/contracts.md): a change it calls compatible
 * breaks no document. fn returning non-zero stops the comparison: SL_ECANCELED. SL_OK or
 * SL_ENOMEM otherwise.
 */
sl_rc sl_contract_compare(const struct sl_contract *old, const struct sl_contract *new_,
                          enum sl_compat_mode mode, sl_contract_change_fn fn, void *ctx,
                          int *incompatible, struct sl_error *err);

#endif
