"""Inventories the differential tests write to disk and compare with ansible-core.

Each case lists its files (path -> text), its ``-i`` sources (paths inside the case folder,
or comma host lists), and the host patterns (optionally with a limit) to compare.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from textwrap import dedent

Pattern = str | tuple[str, str]  # pattern, or (pattern, limit)

COMMON_PATTERNS: tuple[Pattern, ...] = ("all", "ungrouped", "*", "nomatch")


@dataclass(frozen=True)
class Case:
    name: str
    files: dict[str, str]
    sources: tuple[str, ...]
    patterns: tuple[Pattern, ...] = ()
    graph_groups: tuple[str, ...] = ("all",)
    list_limits: tuple[str, ...] = ()
    # Run ansible (and hostplane) from inside the case folder, with relative sources.
    cwd_in_case: bool = False
    executable: tuple[str, ...] = field(default=())

    def all_patterns(self) -> tuple[Pattern, ...]:
        return COMMON_PATTERNS + self.patterns


def d(text: str) -> str:
    return dedent(text).lstrip("\n")


CASES: list[Case] = [
    Case(
        "ini_basic",
        {
            "hosts.ini": d("""
                # a comment
                ; another comment
                loose1
                loose2 ansible_host=10.0.0.2

                [web]
                web1
                web2 http_port=8080
                shared

                [db]
                db1
                shared   # in two groups

                [empty]

                [prod:children]
                web
                db

                [prod:vars]
                env=production
                tier='gold'

                [all:vars]
                ntp=pool.ntp.org
                env=default
                """),
        },
        ("hosts.ini",),
        (
            "web",
            "db",
            "prod",
            "empty",
            "web:db",
            "web,db",
            "prod:&db",
            "prod:!db",
            "shared",
            "loose*",
            "web[0]",
            "prod[1:2]",
            "prod[-1]",
            "prod[2:]",
            ("prod", "web"),
            ("all", "db:loose1"),
            "~web\\d",
            "~^l",
            "!web",
            "&db",
            "web:!shared:db",
        ),
        graph_groups=("all", "prod", "web"),
        list_limits=("web", "prod:!web1"),
    ),
    Case(
        "ini_ranges",
        {
            "ranges.ini": d("""
                [kvm]
                kvm[01:12].example.com
                node-[a:f]
                stride[01:09:2]
                multi[1:2]-[x:z]-[0:1]
                port[1:3]:2222
                10.0.0.[1:4]
                zero[0:3]
                mixed[08:11]
                letters[a:C]
                plain[:2]

                [rack1]
                kvm[01:06].example.com

                [rack2]
                kvm[07:12].example.com
                """),
        },
        ("ranges.ini",),
        (
            "kvm",
            "rack1",
            "rack2",
            "kvm0*",
            "kvm[1:3]",
            "*example.com",
            "multi*",
            "port*",
            "10.0.0.*",
            "rack1:rack2",
            "kvm:!rack1",
            "~kvm0[5-8]",
            "node-c",
            "kvm[20]",
        ),
    ),
    Case(
        "ini_typed_values",
        {
            "typed.ini": d("""
                [t]
                h1 int=42 neg=-7 float=1.5 exp=1e3 hex=0x1F oct=0o17 big=123456789012345678901
                h2 yes=True no=False none=None yesword=yes str="hello world" q1="'07'" q2='"x y"'
                h3 lst=[1,2,'three'] dct="{'a': 1, 'b': [2, 3]}" tup="(1, 2)" nested="[{'k': None}]"
                h4 cplx=1+2j ell=... byt="b'raw'" sym=a#b path=/srv/vm-01 eq=a=b empty=
                h5 esc="'\\\\d+'" under=1_000 colon=a:b url=http://x/y?z=1 sset="{1, 2}"
                h6 ansible_port=2201 ansible_user=root ansible_host=192.0.2.6 trailing=1 # comment

                [t:vars]
                s1=hello
                s2=42
                s3=True
                s4=[1, 2]
                s5=hello world   # comment kept: not a literal
                s6=1 # comment dropped: a literal
                s7 = spaced
                s8='quoted'
                s9=
                s10=yes
                """),
        },
        ("typed.ini",),
        ("t", "h*", "h[1-3]"),
    ),
    Case(
        "ini_children_forward",
        {
            "hosts": d("""
                [dc:children]
                east
                west

                [east:children]
                rackA
                rackB

                [west:vars]
                region=us-west

                [rackA]
                a1
                a2

                [rackB]
                b1

                [west]
                w1

                [east:vars]
                region=us-east

                [dc:vars]
                region=global
                dc_only=1
                """),
        },
        ("hosts",),
        ("dc", "east", "west", "rack*", "dc:!east", "east[1]", "dc[0:1]"),
        graph_groups=("all", "dc", "east"),
    ),
    Case(
        "ini_group_names_unsanitized",
        {
            "inv.ini": d("""
                [web-servers]
                w1

                [1st]
                f1

                [db.primary]
                d1

                [web-servers:vars]
                role=web

                [ok_group:children]
                web-servers
                """),
        },
        ("inv.ini",),
        ("web-servers", "1st", "db.primary", "ok_group", "*-*", "web_servers"),
    ),
    Case(
        "ini_all_and_ungrouped",
        {
            "inv.ini": d("""
                top1
                [all]
                inall1
                inall2 x=1
                [ungrouped]
                ug1
                moved
                [g]
                moved
                top1
                [all:vars]
                x=0
                """),
        },
        ("inv.ini",),
        ("g", "inall*", "moved", "ungrouped:g", "all:!ungrouped"),
    ),
    Case(
        "ini_precedence_depth_priority",
        {
            "inv.ini": d("""
                [parent:children]
                child_b
                child_a
                prio

                [child_a:children]
                grandchild

                [child_a]
                h1
                [child_b]
                h1
                h2
                [prio]
                h2
                h3
                [grandchild]
                h3
                h4

                [all:vars]
                v=all
                only_all=1
                [parent:vars]
                v=parent
                p=parent
                [child_a:vars]
                v=child_a
                [child_b:vars]
                v=child_b
                [prio:vars]
                v=prio
                ansible_group_priority=10
                [grandchild:vars]
                v=grandchild
                """),
        },
        ("inv.ini",),
        ("parent", "child_*", "prio", "grandchild", "parent:&prio", "child_a:child_b"),
        graph_groups=("all", "parent"),
    ),
    Case(
        "yaml_basic",
        {
            "inv.yml": d("""
                all:
                  vars:
                    ntp: pool.ntp.org
                  hosts:
                    solo:
                    solo2: {ansible_port: 2222}
                  children:
                    web:
                      hosts:
                        web1:
                        web2:
                          http_port: 8080
                      vars:
                        role: web
                    db:
                      hosts: db1
                    empty:
                    onlyvars:
                      vars:
                        x: 1
                    prod:
                      children:
                        web:
                        db:
                      vars:
                        env: production
                    nested:
                      children: web
                """),
        },
        ("inv.yml",),
        ("web", "db", "prod", "empty", "nested", "solo*", "prod:!db", "web[1]", ("all", "web")),
        graph_groups=("all", "prod"),
    ),
    Case(
        "yaml_types",
        {
            "inv.yaml": d("""
                all:
                  hosts:
                    t1:
                      int: 42
                      octal_yaml11: 017
                      octal_o: 0o17
                      hex: 0x1F
                      float: 1.5
                      inf: .inf
                      exp: 1e3
                      yes_bool: yes
                      on_bool: on
                      true_bool: True
                      null_value: ~
                      empty_value:
                      str_quoted: "07"
                      str_plain: hello world
                      date: 2024-01-02
                      datetime: 2024-01-02 10:11:12
                      list: [1, two, 3.0]
                      dict: {a: 1, b: [x, y]}
                      unsafe: !unsafe '{{ not_a_template }}'
                      multiline: |
                        line one
                        line two
                      folded: >
                        folded
                        text
                      keys: {1: one, 2.5: two, true: three, null: four}
                      anchor: &anc {k: v}
                      alias: *anc
                      merged:
                        <<: *anc
                        extra: 1
                """),
        },
        ("inv.yaml",),
        ("t1",),
    ),
    Case(
        "yaml_ranges_ports_ips",
        {
            "inv.yml": d("""
                kvm:
                  hosts:
                    kvm[01:04]:
                      rack: r1
                    "kvm[05:06]:2201":
                    node[a:c].lab:
                    192.0.2.[10:12]:
                    "[2001:db8::1]:2222":
                    2001:db8::2:
                    "10.1.1.1:22":
                other:
                  hosts:
                    kvm03:
                      extra: yes
                """),
        },
        ("inv.yml",),
        (
            "kvm",
            "other",
            "kvm0*",
            "192.0.2.*",
            "2001:db8::1",
            "node*",
            "kvm:&other",
            "~^kvm0[1-3]$",
            "kvm[-1]",
        ),
    ),
    Case(
        "yaml_top_groups_multi_parent",
        {
            "inv.yml": d("""
                web:
                  hosts:
                    w1:
                    w2:
                  vars:
                    role: web
                db:
                  hosts:
                    d1:
                east:
                  children:
                    web:
                  vars:
                    region: east
                prod:
                  children:
                    east:
                    db:
                  vars:
                    region: none
                    env: prod
                """),
        },
        ("inv.yml",),
        ("prod", "east", "web:db", "prod:!east", "e*"),
        graph_groups=("all", "prod"),
    ),
    Case(
        "json_inventory",
        {
            "inv.json": d("""
                {
                  "all": {
                    "vars": {"dc": "par1", "list": [1, 2]},
                    "children": {
                      "kvm": {
                        "hosts": {"k1": {"ansible_host": "10.0.0.1"}, "k2": null},
                        "vars": {"hv": "kvm"}
                      },
                      "nothing": null
                    }
                  }
                }
                """),
        },
        ("inv.json",),
        ("kvm", "k*", "nothing"),
    ),
    Case(
        "vars_files_forms",
        {
            "inv.ini": d("""
                [web]
                w1
                w2
                [db]
                d1
                [dbs:children]
                db
                """),
            "group_vars/all.yml": "common: from_all_yml\nshadow: all\n",
            "group_vars/web": "from_bare_file: true\nshadow: web\n",
            "group_vars/web.yml": "ignored_because_bare_wins: true\n",
            "group_vars/db.yaml": "from_yaml_ext: 1\n",
            "group_vars/db.json": '{"ignored_json": true}\n',
            "group_vars/dbs/10-main.yml": "dir_first: 1\norder: first\n",
            "group_vars/dbs/20-more.yaml": "order: second\n",
            "group_vars/dbs/30-json.json": '{"json_in_dir": [1, 2]}\n',
            "group_vars/dbs/sub/40-deep.yml": "deep: yes\n",
            "group_vars/dbs/.hidden.yml": "hidden: 1\n",
            "group_vars/dbs/backup.yml~": "backup: 1\n",
            "group_vars/dbs/notes.txt": "txt: 1\n",
            "group_vars/dbs/empty.yml": "",
            "group_vars/unused.yml": "unused: 1\n",
            "host_vars/w1.json": '{"host_json": "w1", "shadow": "host"}\n',
            "host_vars/d1/a.yml": "host_dir: a\n",
            "host_vars/d1/b.yml": "host_dir: b\n",
        },
        ("inv.ini",),
        ("web", "dbs"),
    ),
    Case(
        "vars_precedence_files",
        {
            "inv.ini": d("""
                [parent:children]
                child
                [child]
                h1 inline=host
                h2
                [parent:vars]
                a=parent_inventory
                [child:vars]
                a=child_inventory
                b=child_inventory
                c=child_inventory
                inline=child_inventory
                [all:vars]
                z=all_inventory
                """),
            "group_vars/all.yml": "b: all_file\nz: all_file\n",
            "group_vars/parent.yml": "c: parent_file\nd: parent_file\n",
            "group_vars/child.yml": "d: child_file\n",
            "host_vars/h1.yml": "inline: host_file\ne: host_file\n",
        },
        ("inv.ini",),
        ("parent", "child"),
    ),
    Case(
        "folder_source",
        {
            "inv/10-hosts.ini": "[web]\nw1\nw2\n[web:vars]\nfrom=ini\n",
            "inv/20-more.yml": "all:\n  children:\n    db:\n      hosts:\n        d1:\n    web:\n      hosts:\n        w3:\n",
            "inv/30-noext": "[cache]\nc1\n[app:children]\nweb\ncache\n",
            "inv/old.retry": "should be ignored\n",
            "inv/notes.txt": "ignored [[[\n",
            "inv/README.md": "# ignored\n",
            "inv/backup.ini~": "[ignored]\nx\n",
            "inv/x.orig": "[ignored2]\ny\n",
            "inv/ansible.cfg": "[defaults]\n",
            "inv/.hidden.ini": "[hidden]\nh\n",
            "inv/sub/40-nested.ini": "[nested]\nn1\n",
            "inv/group_vars/web.yml": "from_group_vars: web\n",
            "inv/group_vars/all.yml": "site: lab\n",
            "inv/host_vars/d1.yml": "hv: d1\n",
            "inv/sub/group_vars/nested.yml": "never_loaded: true\n",
        },
        ("inv",),
        ("web", "app", "db", "nested", "cache:db", "app[2]"),
        graph_groups=("all", "app"),
    ),
    Case(
        "multiple_sources",
        {
            "a/hosts.ini": "[web]\nw1\nw2\n[web:vars]\nx=a_inventory\n",
            "a/group_vars/web.yml": "gv: a\nonly_a: 1\nprio_check: a_web\n",
            "a/group_vars/all.yml": "site: a\n",
            "b/hosts.yml": "all:\n  children:\n    web:\n      hosts:\n        w3:\n    db:\n      hosts:\n        d1:\n        w1:\n",
            "b/group_vars/web.yml": "gv: b\nonly_b: 1\n",
            "b/group_vars/db.yml": "prio_check: b_db\n",
            "b/group_vars/all.yml": "site: b\n",
            "b/host_vars/w1.yml": "hv: b\n",
        },
        ("a/hosts.ini", "b/hosts.yml", "h9,h10:2210"),
        ("web", "db", "h*", "web:&db", "ungrouped"),
    ),
    Case(
        "host_list_only",
        {},
        ("h1,h2:2201,",),
        ("h1", "h2", "h*", "all[1]", "localhost"),
    ),
    Case(
        "host_list_odd_entries",
        {},
        ("alpha, beta:22 ,[2001:db8::5]:2022,192.0.2.1:2200,r[1:3],bad_:33,,",),
        ("alpha", "r*", "192.0.2.1", "~.*:.*"),
    ),
    Case(
        "localhost_explicit",
        {"local.ini": "localhost ansible_connection=local\n[web]\nw1\n"},
        ("local.ini",),
        ("localhost", "127.0.0.1", "localhost:web", ("localhost", "web"), "::1"),
    ),
    Case(
        "localhost_implicit",
        {"inv.ini": "[web]\nw1\nw2\n", "group_vars/all.yml": "site: x\n"},
        ("inv.ini",),
        (
            "localhost",
            "127.0.0.1",
            "localhost:web",
            "web:localhost",
            ("localhost", "w1"),
            "localhost:127.0.0.1",
            "local*",
        ),
    ),
    Case(
        "host_named_like_group",
        {
            "inv.ini": d("""
                [web]
                web gv=1
                other
                [db]
                web
                [web:vars]
                x=1
                """),
        },
        ("inv.ini",),
        ("web", "db", "web:db", "w*"),
    ),
    Case(
        "patterns_heavy",
        {
            "inv.ini": d("""
                [kvm]
                kvm[01:10]
                [rack1]
                kvm[01:05]
                [rack2]
                kvm[06:10]
                [gpu]
                kvm02
                kvm07
                kvm09
                [maint]
                kvm03
                kvm09
                [edge]
                edge[1:3] ansible_host=10.9.9.1
                """),
            "limit.txt": "kvm01\nkvm07\n\nedge2\n",
        },
        ("inv.ini",),
        (
            "kvm:&rack1",
            "kvm:!maint",
            "rack1:rack2:&gpu:!maint",
            "!maint:gpu",
            "&gpu:rack1",
            "gpu,maint",
            "rack*[0]",
            "*[2:4]",
            "kvm[3:]",
            "kvm[0:0]",
            "gpu[-1]",
            "~kvm0[13579]",
            "~(edge|gpu)",
            "kvm0?",
            "kvm1*:edge*",
            "rack2:edge[1:]",
            ("kvm", "rack2"),
            ("kvm", "rack1:&gpu"),
            ("all", "@limit.txt"),
            ("rack2", "@limit.txt"),
            ("gpu", "!kvm07"),
            "kvm[1-3]",
            "maint:maint",
            "kvm09:gpu",
        ),
        list_limits=("rack1", "@limit.txt"),
        cwd_in_case=True,
    ),
    Case(
        "yaml_priority_and_vars_merge",
        {
            "inv.yml": d("""
                all:
                  vars:
                    cfg: {a: 1, b: 2}
                    v: all
                  children:
                    low:
                      vars:
                        v: low
                        ansible_group_priority: 5
                      hosts:
                        h1:
                    high:
                      vars:
                        v: high
                        cfg: {c: 3}
                      hosts:
                        h1:
                          hostvar: 1
                        h2:
                    zeta:
                      vars:
                        v: zeta
                      hosts:
                        h2:
                          cfg: {d: 4}
                """),
        },
        ("inv.yml",),
        ("low", "high", "zeta", "low:high:zeta"),
    ),
    Case(
        "mixed_folder_cross_file_children",
        {
            "inv/a.yml": "all:\n  children:\n    kvm:\n      hosts:\n        k1:\n        k2:\n",
            "inv/b.ini": "[rack1]\nk1\n[rack2]\nk2\nk3\n[kvm:children]\nrack2\n[kvm:vars]\nhv=qemu\n",
            "inv/c.yaml": "site:\n  children:\n    kvm:\n    rack1:\n  vars:\n    dc: par\n",
        },
        ("inv",),
        ("kvm", "site", "rack*", "site:!rack1", "kvm[2]"),
        graph_groups=("all", "site", "kvm"),
    ),
    Case(
        "empty_and_comment_only",
        {"empty.ini": "", "comments.ini": "# nothing\n; here\n\n", "empty.yml": ""},
        ("empty.ini", "comments.ini", "empty.yml"),
        ("localhost",),
    ),
    Case(
        "format_fallbacks",
        {
            "ini_in_yml.yml": "[fallback]\nf1\nf2 v=1\n",
            "yaml_noext": "yamlgroup:\n  hosts:\n    y1:\n",
            "plain_list_noext": "p1\np2\n",
        },
        ("ini_in_yml.yml", "yaml_noext", "plain_list_noext"),
        ("fallback", "yamlgroup", "p*"),
    ),
    Case(
        "unicode_names",
        {
            "inv.ini": "[serveurs_été]\nhôte1\nnœud2 città=Zürich\n[données:children]\nserveurs_été\n",
        },
        ("inv.ini",),
        ("serveurs_été", "h*", "données"),
    ),
    Case(
        "diamond_and_depth",
        {
            "inv.ini": d("""
                [top:children]
                left
                right
                [left:children]
                bottom
                [right:children]
                middle
                [middle:children]
                bottom
                [bottom]
                b1 v=host
                b2
                [left]
                l1
                [right]
                r1
                [top:vars]
                v=top
                [left:vars]
                v=left
                [right:vars]
                v=right
                [middle:vars]
                v=middle
                [bottom:vars]
                w=bottom
                """),
        },
        ("inv.ini",),
        ("bottom", "middle", "left:right", "top:!left", "b*"),
        graph_groups=("all", "top", "right"),
    ),
    Case(
        "relative_sources_cwd",
        {
            "inv/hosts": "[g]\nh1\nh2\n",
            "inv/group_vars/g.yml": "from: inventory_dir\nboth: inventory\n",
            "group_vars/g.yml": "playbook_dir: yes\nboth: playbook\n",
            "host_vars/h1.yml": "pb_host: yes\n",
        },
        ("inv/hosts",),
        ("g",),
        cwd_in_case=True,
    ),
    Case(
        "connection_vars",
        {
            "inv.yml": d("""
                all:
                  vars:
                    ansible_user: admin
                  children:
                    kvm:
                      vars:
                        ansible_become: true
                        ansible_python_interpreter: /usr/bin/python3
                      hosts:
                        k1:
                          ansible_host: 10.0.0.11
                          ansible_port: 2201
                        k2:
                          ansible_ssh_host: 10.0.0.12
                          ansible_host: ignored-by-ssh-alias
                          ansible_ssh_private_key_file: ~/.ssh/kvm
                        k3:
                          ansible_connection: paramiko
                          ansible_become_user: libvirt
                        local1:
                          ansible_connection: local
                """),
        },
        ("inv.yml",),
        ("kvm", "k*"),
    ),
]
