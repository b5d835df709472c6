/* cli.h: subcommands of the cordon command. */
#ifndef CORDON_CLI_H
#define CORDON_CLI_H

#include <stdbool.h>

int cli_connect_main(int argc, char **argv);
int cli_proxy_main(int argc, char **argv);

#endif
