/* doctor.h: `cordon doctor`, which checks that this machine gives cordon
 * every kernel feature it relies on (doctor.c). */
#ifndef CORDON_CLI_DOCTOR_H
#define CORDON_CLI_DOCTOR_H

/* argv[0] is "doctor". Returns the exit status: 0 when every check cordon
 * relies on passed, 1 otherwise, 125 for a usage error. */
int cli_doctor_main(int argc, char **argv);

#endif
