/* update.h: live policy updates (--control-fd, srt's live-update protocol):
 * one settings document per line, which may change only the network rules
 * read on the next connection.
 *
 * Owns: reading one control line (untrusted: whatever writes to the control
 * fd) into a new policy, and the rule that only the live keys
 * (network.allowedDomains, deniedDomains, deniedDomainReasons,
 * deniedResolvedAddresses, strictAllowlist, defaultPorts; srt-compat.md 1.5)
 * may differ from the policy in force. Everything else (filesystem, the
 * sandbox's shape, credentials, interception) was fixed when the command
 * started, and an update that touches it is refused whole.
 */
#ifndef CORDON_POLICY_UPDATE_H
#define CORDON_POLICY_UPDATE_H

#include "cordon.h"

#include <stdbool.h>
#include <stddef.h>

enum policy_update {
    POLICY_UPDATE_EMPTY,   /* blank: nothing to do */
    POLICY_UPDATE_INVALID, /* not a valid settings document: why is the loader's error */
    POLICY_UPDATE_FIXED,   /* valid, but changes a key that is fixed: why names the key */
    POLICY_UPDATE_OK,      /* *out is the new policy (the caller frees it) */
};

/* Read one control line (without its '\n'; trimmed here of blanks and CR at
 * both ends, in place) against the policy in force. name labels the
 * document in error messages ("control line 3"); opts are the load options
 * of the policy in force (the same ~ and working directory). */
enum policy_update policy_update_parse(const cordon_policy *live, char *line, const char *name,
                                       const struct cordon_load_opts *opts, cordon_policy **out,
                                       char *why, size_t whyn);

#endif
