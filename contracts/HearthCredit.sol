// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";

/// @title Hearth Credit
/// @notice Hearth's credit as an ERC-20 token. One token is one credit and the token has 6
/// decimals, so one base unit of the token is one base unit of Hearth credit (10^6 per credit).
/// Tokens come into being only by redeeming a voucher signed by the hub's key: the hub pays
/// nothing on chain while volunteers work, and a volunteer (or anyone relaying for them)
/// claims whenever they like.
///
/// A voucher is CUMULATIVE: `Voucher(account, amount, expiry)` says "`account` has earned
/// `amount` base units in total". Redeeming it mints `amount - claimed[account]` and records
/// `claimed[account] = amount`. So a claim costs the same however many shards it settles, the
/// hub needs no nonces (a newer voucher supersedes every older one), and a replayed or older
/// voucher can mint nothing.
///
/// Storage is laid out for the claim path. The balance and the claimed total of an address share
/// one slot (two uint128), so a claim writes one account slot instead of two: ERC20's own
/// `_balances` and `_totalSupply` are never used; `balanceOf`, `totalSupply` and `_update` read
/// and write `_holders` and `_supply` instead, and every transfer still goes through
/// OpenZeppelin's checks, allowances and events. The trusted key and the retirement time of the
/// previous key share one slot too; the previous key is read only when the current one did not
/// sign.
contract HearthCredit is ERC20, EIP712, Ownable {
    /// keccak256("Voucher(address account,uint256 amount,uint256 expiry)")
    bytes32 public constant VOUCHER_TYPEHASH =
        keccak256("Voucher(address account,uint256 amount,uint256 expiry)");

    /// A voucher with its signature, as `claimMany` takes them.
    struct SignedVoucher {
        address account;
        uint256 amount;
        uint256 expiry;
        bytes signature;
    }

    struct Holder {
        uint128 balance;
        uint128 claimed;
    }

    struct Signers {
        address current;
        uint64 previousValidUntil;
    }

    mapping(address account => Holder) private _holders;
    uint256 private _supply;
    Signers private _signers;
    address private _previousSigner;

    /// The voucher's expiry (seconds since 1970, as `block.timestamp`) has passed.
    error VoucherExpired();
    /// The signature is not a well-formed 65-byte secp256k1 signature with a low `s`.
    error InvalidSignature();
    /// The voucher was not signed by a key this contract trusts: a forged signature, or a voucher
    /// altered after signing (amount, account, expiry), or one signed for another chain or
    /// another contract (the EIP-712 domain differs, so the recovered key does).
    error UnknownSigner();
    /// The voucher was signed by the previous key, which stopped being trusted at
    /// `previousValidUntil` (see `setSigner`).
    error SignerRetired();
    /// The account has already claimed this voucher's amount or more: a replayed or older voucher.
    error NothingToClaim();
    /// The amount does not fit the 128-bit claimed total (over 3.4 * 10^32 credits).
    error AmountTooLarge();
    /// A balance would pass 2^128 - 1 base units.
    error BalanceOverflow();
    /// The signer may not be the zero address.
    error ZeroSigner();
    /// A voucher for the zero address: nobody could hold its tokens.
    error ZeroAccount();

    /// `claimMany` skipped this voucher; `reason` is the selector of the error `claim` would
    /// have reverted with (e.g. `NothingToClaim.selector`).
    event ClaimSkipped(address indexed account, uint256 amount, bytes4 reason);
    /// The trusted key changed; `previous` stays trusted until `previousValidUntil`.
    event SignerChanged(address indexed previous, address indexed next, uint64 previousValidUntil);

    constructor(address initialOwner, address initialSigner)
        ERC20("Hearth Credit", "HEARTH")
        EIP712("Hearth Credit", "1")
        Ownable(initialOwner)
    {
        if (initialSigner == address(0)) revert ZeroSigner();
        _signers = Signers(initialSigner, 0);
        emit SignerChanged(address(0), initialSigner, 0);
    }

    // ------------------------------------------------------------------ claiming

    /// @notice Redeems a voucher: mints to `account` what it earned since its last claim.
    /// Anyone may call (a relayer paying the gas); the tokens always go to `account`.
    /// @return minted base units minted (amount - the total claimed before)
    function claim(address account, uint256 amount, uint256 expiry, bytes calldata signature)
        external
        returns (uint256 minted)
    {
        bytes4 failure;
        (minted, failure) = _claim(account, amount, expiry, signature);
        if (failure != 0) {
            assembly ("memory-safe") {
                mstore(0, failure)
                revert(0, 4)
            }
        }
        _supply += minted;
        emit Transfer(address(0), account, minted);
    }

    /// @notice Redeems many vouchers in one transaction, for operators settling in batches.
    /// A voucher that `claim` would refuse is SKIPPED, with a `ClaimSkipped` event naming its
    /// account and the reason; the others are paid. Why not all-or-nothing: a batch is settled
    /// for many volunteers at once, and any one of them can make their own voucher fail at will
    /// (claim it themselves first, so it has nothing left to claim) — an atomic batch would let
    /// one volunteer, or one expired voucher, cost the operator the whole batch's gas and delay
    /// everybody else's tokens. Skipping is safe because a voucher is cumulative: a skipped one
    /// loses nothing, the next voucher for that account carries its amount.
    /// @return total base units minted over the batch
    function claimMany(SignedVoucher[] calldata vouchers) external returns (uint256 total) {
        uint256 n = vouchers.length;
        for (uint256 i; i < n;) {
            SignedVoucher calldata v = vouchers[i];
            (uint256 minted, bytes4 failure) = _claim(v.account, v.amount, v.expiry, v.signature);
            if (failure != 0) {
                emit ClaimSkipped(v.account, v.amount, failure);
            } else {
                emit Transfer(address(0), v.account, minted);
                total += minted;
            }
            unchecked {
                ++i;
            }
        }
        _supply += total;
    }

    /// Checks a voucher and, when it is good, records the account's new total and balance (the
    /// caller adds `minted` to the supply and emits the Transfer, once per batch for the supply).
    /// Returns the error selector instead of reverting, so that `claimMany` can skip.
    function _claim(address account, uint256 amount, uint256 expiry, bytes calldata signature)
        private
        returns (uint256 minted, bytes4 failure)
    {
        if (block.timestamp > expiry) return (0, VoucherExpired.selector);
        if (amount > type(uint128).max) return (0, AmountTooLarge.selector);
        if (account == address(0)) return (0, ZeroAccount.selector);

        bytes32 typeHash = VOUCHER_TYPEHASH;
        bytes32 structHash;
        assembly ("memory-safe") {
            let p := mload(0x40)
            mstore(p, typeHash)
            mstore(add(p, 0x20), account)
            mstore(add(p, 0x40), amount)
            mstore(add(p, 0x60), expiry)
            structHash := keccak256(p, 0x80)
        }
        (address recovered, ECDSA.RecoverError err,) =
            ECDSA.tryRecoverCalldata(_hashTypedDataV4(structHash), signature);
        if (err != ECDSA.RecoverError.NoError) return (0, InvalidSignature.selector);
        Signers memory s = _signers;
        if (recovered != s.current) {
            if (recovered != _previousSigner) return (0, UnknownSigner.selector);
            if (block.timestamp > s.previousValidUntil) return (0, SignerRetired.selector);
        }

        Holder memory h = _holders[account];
        if (amount <= h.claimed) return (0, NothingToClaim.selector);
        unchecked {
            minted = amount - h.claimed;
        }
        uint256 balance = uint256(h.balance) + minted;
        if (balance > type(uint128).max) return (0, BalanceOverflow.selector);
        // One SSTORE for both fields.
        _holders[account] = Holder(uint128(balance), uint128(amount));
        return (minted, 0);
    }

    // ------------------------------------------------------------------ the trusted key

    /// @notice Trusts `next` from now on. The current key stays trusted until
    /// `previousValidUntil` (a `block.timestamp`), so vouchers it signed before the rotation can
    /// still be claimed; pass 0 (or any past time) to stop trusting it at once (a leaked key).
    /// Only one previous key is remembered: the one before it stops being trusted now.
    function setSigner(address next, uint64 previousValidUntil) external onlyOwner {
        if (next == address(0)) revert ZeroSigner();
        address previous = _signers.current;
        _previousSigner = previous;
        _signers = Signers(next, previousValidUntil);
        emit SignerChanged(previous, next, previousValidUntil);
    }

    /// The key whose vouchers are accepted.
    function signer() external view returns (address) {
        return _signers.current;
    }

    /// The key trusted before the last rotation, and until when (zero address if none).
    function previousSigner() external view returns (address key, uint64 validUntil) {
        return (_previousSigner, _signers.previousValidUntil);
    }

    /// The total base units `account` has claimed: the amount of the last voucher it redeemed.
    function claimed(address account) external view returns (uint256) {
        return _holders[account].claimed;
    }

    /// The EIP-712 domain separator vouchers are signed under.
    // solhint-disable-next-line func-name-mixedcase
    function DOMAIN_SEPARATOR() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    // ------------------------------------------------------------------ ERC-20 on packed storage

    /// 6, as Hearth credit's base units: 1 token = 1 credit = 10^6 base units.
    function decimals() public pure override returns (uint8) {
        return 6;
    }

    function totalSupply() public view override returns (uint256) {
        return _supply;
    }

    function balanceOf(address account) public view override returns (uint256) {
        return _holders[account].balance;
    }

    /// OpenZeppelin's `_update`, on `_holders` and `_supply` (see the top of the contract).
    /// Claims write their account slot themselves, balance and claimed total in one store.
    function _update(address from, address to, uint256 value) internal override {
        if (from == address(0)) {
            _supply += value;
        } else {
            Holder storage f = _holders[from];
            uint256 fromBalance = f.balance;
            if (fromBalance < value) revert ERC20InsufficientBalance(from, fromBalance, value);
            unchecked {
                f.balance = uint128(fromBalance - value);
            }
        }
        if (to == address(0)) {
            unchecked {
                _supply -= value;
            }
        } else {
            Holder storage t = _holders[to];
            uint256 toBalance = uint256(t.balance) + value;
            if (toBalance > type(uint128).max) revert BalanceOverflow();
            t.balance = uint128(toBalance);
        }
        emit Transfer(from, to, value);
    }
}
