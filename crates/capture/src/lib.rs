//! Capture inputs and outputs: pcap/pcapng files, the UDP listener and sender.
