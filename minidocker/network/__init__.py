"""Networks (网络): bridges, veth pairs, IPAM, NAT and names, through netlink. Chapter 04 fills this
package. Until then a container gets a network namespace of its own holding only `lo`; the engine
will prepare the namespace here and hand the runtime its path (`linux.namespaces[].path`).
"""
