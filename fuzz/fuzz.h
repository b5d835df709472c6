/* fuzz.h: the libFuzzer entry points every target in fuzz/ implements.
 *
 * A target defines LLVMFuzzerTestOneInput (and, when it needs one-time setup,
 * LLVMFuzzerInitialize). The same object is linked either with libFuzzer
 * (fuzz-<name>, -Dfuzzing=true under clang) or with replay_main.c
 * (replay-<name>, always built), which runs the seed corpus in the unit suite.
 * A target reports a broken invariant by calling abort().
 */
#ifndef CORDON_FUZZ_H
#define CORDON_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#endif
