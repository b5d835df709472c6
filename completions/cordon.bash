# bash completion for cordon(1)                              -*- shell-script -*-
#
# Installed as share/bash-completion/completions/cordon. The options are
# those of src/cli/main.c (tests/install checks that every one is here);
# subcommands are recognised only as the first argument, as in main.c.
# Uses the bash-completion package's _filedir and _command_offset when they
# are loaded, and plain compgen without them.

_cordon_subcommands="connect doctor proxy"
# cordon proxy's own options (src/cli/proxy_cmd.c)
_cordon_proxy_opts="--listen --listen-fd --listen-any-interface --decider-fd --decider-in
                    --decider-out --lifeline-fd --ca-fd --strip-response-header
                    --plaintext-header-set -s --settings --audit --audit-fd
                    -d --debug --version -h --help"
_cordon_opts="-s --settings -c --allow-write --deny-write --allow-read --deny-read
              --allow-domain --deny-domain --audit --audit-fd --print-policy
              --violations-block --control-fd
              -d --debug -V --version -h --help"

# File names into COMPREPLY.
_cordon_files()
{
    if declare -F _filedir >/dev/null; then
        local cur=$1  # _filedir reads $cur
        _filedir
    else
        local IFS=$'\n'
        COMPREPLY=($(compgen -f -- "$1"))
        compopt -o filenames 2>/dev/null
    fi
}

# The value of option $1, typed so far as $2.
_cordon_optarg()
{
    case $1 in
        -s|--settings|--audit|--allow-write|--deny-write|--allow-read|--deny-read)
            _cordon_files "$2" ;;
        --allow-domain|--deny-domain)
            COMPREPLY=($(compgen -A hostname -- "$2")) ;;
        *)  # -c STRING, --audit-fd N, --control-fd N: nothing to offer
            COMPREPLY=() ;;
    esac
}

_cordon()
{
    local cur i w expect="" ended=false
    local -a words=() at=()
    local cword=0
    COMPREPLY=()
    # bash splits "--opt=value" at COMP_WORDBREAKS: put it back together,
    # remembering where each word starts in COMP_WORDS (at[]).
    for (( i = 0; i < ${#COMP_WORDS[@]}; i++ )); do
        w=${COMP_WORDS[i]}
        if (( ${#words[@]} )) && [[ ${words[-1]} == --* ]] &&
           [[ $w == "=" || ${words[-1]} == --*= ]]; then
            words[-1]+=$w
        else
            words+=("$w")
            at+=("$i")
        fi
        (( i == COMP_CWORD )) && cword=$(( ${#words[@]} - 1 ))
    done
    cur=${words[cword]}
    if [[ $cur == --*=* ]]; then
        _cordon_optarg "${cur%%=*}" "${cur#*=}"
        return
    fi

    # A subcommand is only ever the first argument.
    if (( cword >= 2 )); then
        case ${words[1]} in
            connect)  # cordon connect HOST PORT
                (( cword == 2 )) && COMPREPLY=($(compgen -A hostname -- "$cur"))
                return ;;
            doctor)  # cordon doctor [--json]
                [[ $cur == -* ]] && COMPREPLY=($(compgen -W "--json -h --help" -- "$cur"))
                return ;;
            proxy)  # cordon proxy [options]: its options are its own
                case ${words[cword-1]} in
                    -s|--settings|--audit)
                        _cordon_files "$cur" ;;
                    --listen|--listen-fd|--decider-fd|--decider-in|--decider-out|\
                    --lifeline-fd|--ca-fd|--audit-fd|--strip-response-header)
                        COMPREPLY=() ;;  # an address, a descriptor or a header name
                    *)
                        COMPREPLY=($(compgen -W "$_cordon_proxy_opts" -- "$cur")) ;;
                esac
                return ;;
        esac
    fi

    # Walk the words before the cursor as getopt_long ("+s:c:dVh") does:
    # options end at the first word that is not one, or at "--".
    for (( i = 1; i < cword; i++ )); do
        w=${words[i]}
        if [[ -n $expect ]]; then
            expect=""
            continue
        fi
        case $w in
            --) ended=true; i=$(( i + 1 )); break ;;
            --settings|--allow-write|--deny-write|--allow-read|--deny-read|\
            --allow-domain|--deny-domain|--audit|--audit-fd|--control-fd)
                expect=$w ;;
            --*) ;;
            -*[sc]) expect=-${w: -1} ;;  # -s, -c, or a cluster ending in one (-ds)
            -?*) ;;
            *) break ;;
        esac
    done

    if [[ -n $expect ]]; then
        _cordon_optarg "$expect" "$cur"
        return
    fi
    if (( i < cword )); then
        # Past the command: complete as that command would.
        if declare -F _command_offset >/dev/null; then
            _command_offset "${at[i]}"
        else
            _cordon_files "$cur"
        fi
        return
    fi
    if ! $ended && [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$_cordon_opts --" -- "$cur"))
        return
    fi
    # The command; right after "cordon", a subcommand too.
    local subs=""
    (( cword == 1 )) && subs=$_cordon_subcommands
    COMPREPLY=($(compgen -W "$subs" -- "$cur") $(compgen -c -- "$cur"))
}
complete -F _cordon cordon

# ex: filetype=sh
