'use strict';
// DS's typed `columns` of a champ (Champ.columns: TextColumn, IntegerColumn, ...), the
// breakdown DS's own exports use. Derived from the champ's generated value, so they
// always agree with its typed fields. Labels follow DS: the champ's label for its value,
// "<label> – <part>" for the parts of a composite value.
const { typedId } = require('./util');

const text = (label, v) => ({ __typename: 'TextColumn', label, stringValue: v == null ? null : String(v), value: v == null ? null : String(v) });
const part = (l, p) => `${l} – ${p}`;

/** The columns of a champ of `kind` with value `val` (render.js's generated or empty value). */
function columnsFor(kind, desc, val) {
  const l = desc.label;
  const cols = [];
  switch (kind) {
    case 'HeaderSectionChamp': case 'ExplicationChamp': case 'RepetitionChamp': break;
    case 'IntegerNumberChamp':
      cols.push({ __typename: 'IntegerColumn', label: l, stringValue: val.stringValue ?? null, value: val.value ?? null }); break;
    case 'DecimalNumberChamp':
      cols.push({ __typename: 'DecimalColumn', label: l, stringValue: val.stringValue ?? null, value: val.value ?? null }); break;
    case 'CheckboxChamp': case 'YesNoChamp':
      cols.push({ __typename: 'BooleanColumn', label: l, stringValue: val.stringValue ?? null, value: val.value ?? null }); break;
    case 'DateChamp':
      cols.push({ __typename: 'DateColumn', label: l, stringValue: val.stringValue ?? null, value: val.date ?? null }); break;
    case 'DatetimeChamp':
      cols.push({ __typename: 'DateTimeColumn', label: l, stringValue: val.stringValue ?? null, value: val.datetime ?? null }); break;
    case 'DropDownListChamp':
      cols.push({ __typename: 'EnumColumn', label: l, stringValue: val.stringValue ?? null, value: val.value ?? null }); break;
    case 'MultipleDropDownListChamp':
      cols.push({ __typename: 'EnumsColumn', label: l, stringValue: val.stringValue ?? null, value: val.values || [] }); break;
    case 'CommuneChamp':
      cols.push(text(l, val.commune && val.commune.name), text(part(l, 'Code INSEE'), val.commune && val.commune.code),
        text(part(l, 'Département'), val.departement && val.departement.code)); break;
    case 'AddressChamp': {
      const a = val.address || {};
      cols.push(text(l, a.label), text(part(l, 'Code postal'), a.postalCode), text(part(l, 'Commune'), a.cityName),
        text(part(l, 'Code INSEE'), a.cityCode), text(part(l, 'Département'), a.departmentCode), text(part(l, 'Région'), a.regionCode));
      break;
    }
    case 'SiretChamp': {
      const e = val.etablissement || {};
      cols.push(text(l, e.siret), text(part(l, 'Raison sociale'), e.entreprise && e.entreprise.raisonSociale), text(part(l, 'Code NAF'), e.naf));
      break;
    }
    case 'EngagementJuridiqueChamp': {
      const ej = val.engagementJuridique || {};
      cols.push(text(l, val.stringValue),
        { __typename: 'DecimalColumn', label: part(l, 'Montant engagé'), stringValue: ej.montantEngage ?? null, value: ej.montantEngage == null ? null : Number(ej.montantEngage) });
      break;
    }
    default: cols.push(text(l, val.stringValue));
  }
  // ids are the descriptor's and the part's: the same in every dossier and row
  return cols.map((c, i) => ({ id: typedId('Column', `${desc.stableId}/${i}`), ...c }));
}

module.exports = { columnsFor };
