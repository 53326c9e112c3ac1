#!/usr/bin/perl
# A tiny SMSC on Net::SMPP (Debian's libnet-smpp-perl), the peer our SMPP
# client is tested against: it answers bind_transceiver, enquire_link and
# unbind, answers each submit_sm with a message id, then sends a deliver_sm
# receipt (esm_class 4, "id:... stat:DELIVRD") and the message itself back as
# an inbound deliver_sm. It serves one connection, then exits.
#
# Prints "listening PORT" first; with an argument (a password) it refuses
# other passwords with ESME_RINVPASWD. Exits 0 after an unbind, 3 when the
# client went away without one.
use strict;
use warnings;
use Net::SMPP;

$| = 1;
my $password = $ARGV[0] // '';
my $listener = Net::SMPP->new_listen('127.0.0.1', port => 0, smpp_version => 0x34)
  or die "cannot listen: $!";
print "listening ", $listener->sockport, "\n";
my $conn = $listener->accept or die "accept: $!";
my $n = 0;
my $unbound = 0;
while (my $pdu = $conn->read_pdu()) {
    my $cmd = $pdu->{cmd};
    if ($cmd == 0x00000009) {
        my $ok = $password eq '' || $pdu->{password} eq $password;
        $conn->bind_transceiver_resp(seq => $pdu->{seq}, status => ($ok ? 0 : 0x0E),
                                     system_id => 'perl-smsc');
    } elsif ($cmd == 0x00000004) {
        $n++;
        my $id = sprintf('perl%04d', $n);
        $conn->submit_sm_resp(seq => $pdu->{seq}, message_id => $id);
        $conn->deliver_sm(
            source_addr_ton => 1, source_addr_npi => 1,
            source_addr => $pdu->{destination_addr},
            dest_addr_ton => 1, dest_addr_npi => 1,
            destination_addr => $pdu->{source_addr},
            esm_class => 4,
            short_message => "id:$id sub:001 dlvrd:001 submit date:2611281200 done date:2611281200 stat:DELIVRD err:000 text:",
            async => 1);
        $conn->deliver_sm(
            source_addr_ton => 1, source_addr_npi => 1,
            source_addr => $pdu->{source_addr},
            dest_addr_ton => 1, dest_addr_npi => 1,
            destination_addr => $pdu->{destination_addr},
            esm_class => $pdu->{esm_class} & 0x40,
            data_coding => $pdu->{data_coding},
            short_message => $pdu->{short_message},
            async => 1);
    } elsif ($cmd == 0x00000015) {
        $conn->enquire_link_resp(seq => $pdu->{seq});
    } elsif ($cmd == 0x00000006) {
        $conn->unbind_resp(seq => $pdu->{seq});
        $unbound = 1;
        last;
    }
}
exit($unbound ? 0 : 3);
